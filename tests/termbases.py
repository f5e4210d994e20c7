"""Glossaries as termbases and terminologists publish them: one fixture per producer's layout, with its habits, and
the entries csas must read from it (tests/data/test_glossaries.py).

`TERMBASES` maps a name to a `Termbase`: the file's name, a function writing it, the layout csas must recognise,
the entries ((English forms), (French forms)) in order, and the records skipped by reason.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TERMIUM_HEADER = (
    "SUBJECT_EN,TERM_EN,TERM_EN_PARAMETER,ABBREVIATION_EN,ABBREVIATION_EN_PARAMETER,SYNONYMS_EN,SYNONYMS_EN_PARAMETERS,"
    "TEXTUAL_SUPPORT_1_EN,TEXTUAL_SUPPORT_2_EN,TEXTUAL_SUPPORT_3_EN,DOMAINE_FR,TERME_FR,TERME_FR_PARAMETRE,"
    "ABBREVIATION_FR,ABBREVIATION_FR_PARAMETRE,SYNONYMES_FR,SYNONYMES_FR_PARAMETRE,JUSTIFICATION_1_FR,"
    "JUSTIFICATION_2_FR,JUSTIFICATION_3_FR,UNIVERSAL_ENTRIES,DOM_SUBJ_ES,TERME_TERM_ES,TERME_TERM_PARAM_ES,ABBR_ES,"
    "ABBR_PARAM_ES,SYNO_ES,SYNO_PARAM_ES,JUST_TEXTSUPP_1_ES,JUST_TEXTSUPP_2_ES,JUST_TEXTSUPP_3_ES,DOM_SUBJ_PT,"
    "TERME_TERM_PT,TERME_TERM_PARAM_PT,ABBR_PT,ABBR_PARAM_PT,SYNO_PT,SYNO_PARAM_PT,JUST_TEXTSUPP_1_PT,"
    "JUST_TEXTSUPP_2_PT,JUST_TEXTSUPP_3_PT"
)
"""The TERMIUM Plus open-data export's 41 columns, as published (plural SYNONYMS_EN_PARAMETERS, the Spanish and
Portuguese blocks named otherwise)."""

TERMIUM_ROWS = r'''Boxing,overmatched,correct,,,,,,,,Boxe,surclassé,,,,,,,,,,Boxeo,sobrecalificado,"correct,masculine noun",,,,,,,,,,,,,,,,,
Boxing,"speed ball",correct,,,"point ball",correct,,,,Boxe,"ballon de vitesse","correct,masculine noun",,,,,,,,,Boxeo,"pelota suspendida en un solo punto","correct,feminine noun",,,,,,,,,,,,,,,,,
Boxing,"Boxing Manitoba",correct,,,"Manitoba Amateur Boxing Association Inc.;Manitoba Amateur Boxing Association","former designation,correct;former designation,correct","OBS: [The association's] mandate is to provide opportunities.",,,Boxe,"Boxing Manitoba",correct,,,"Manitoba Amateur Boxing Association Inc.;Manitoba Amateur Boxing Association","former designation,correct;former designation,correct",,,,,,,,,,,,,,,,,,,,,,,,
Boxing,"Canadian Professional Boxing Council",correct,C.P.B.C.,correct,,,"OBS: [C.P.B.C. is] the longest reigning sanctioning body …",,,Boxe,"Canadian Professional Boxing Council",correct,C.P.B.C.,correct,,,,,,,,,,,,,,,,,,,,,,,,,,
Boxing,groggy,correct,,,,,"OBS: Rules/refereeing.",,,Boxe,étourdi,correct,,,sonné;groggy,"correct;correct,anglicism","OBS: Règlement/arbitrage.",,,,Boxeo,aturdido,correct,,,,,,,,,,,,,,,,,
Boxing,stagger,"correct,verb",,,,,"OBS: """"stagger"""" is intransitive.",,,Boxe,chanceler,correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Boxing,"stop a blow",verb,,,,,,,,Boxe,"bloquer un coup",,,,"parer un coup",,,,,,,,,,,,,,,,,,,,,,,,,
Boxing,"knock out",avoid,,,knockout,correct,,,,Boxe,"mettre knock-out","à éviter",,,"mettre K.-O.",correct,,,,,,,,,,,,,,,,,,,,,,,,
Boxing,"rabbit punch","obsolete,noun",,,,,,,,Boxe,"coup du lapin","désuet,masculine noun",,,,,,,,,,,,,,,,,,,,,,,,,,,,
Boxing,,,,,,,,,,Boxe,"uniquement en français",correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Golf,plant,correct,,,,,,,,Golf,"mettre un pied à terre",correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Boxing,overmatched,correct,,,,,,,,Boxe,surclassé,correct,,,dominé,correct,,,,,,,,,,,,,,,,,,,,,,,,
'''
"""Rows as the export writes them: bare or quoted fields, `;`-separated synonyms with their parameters in step,
retired forms (avoid, former designation, obsolete, à éviter, désuet), a French-only record, a duplicate."""

TERMIUM_ENTRIES = (
    (("overmatched",), ("surclassé", "dominé")),
    (("speed ball", "point ball"), ("ballon de vitesse",)),
    (("Boxing Manitoba",), ("Boxing Manitoba",)),
    (("Canadian Professional Boxing Council", "C.P.B.C."), ("Canadian Professional Boxing Council", "C.P.B.C.")),
    (("groggy",), ("étourdi", "sonné", "groggy")),
    (("stagger",), ("chanceler",)),
    (("stop a blow",), ("bloquer un coup", "parer un coup")),
    (("knockout",), ("mettre K.-O.",)),
    (("plant",), ("mettre un pied à terre",)),
)

TICO_FACEBOOK = """id,sourceLang,targetLang,sourceString,targetString
1,en,fr_XX,1918 flu,Grippe de 1918
2,en,fr_XX,acute bronchitis,bronchite aiguë
4,en,fr_XX,AIDS,SIDA
243,en,fr_XX,Severe Acute Respiratory Syndrome,syndrome respiratoire aigu sévère, SRAS
306,en,fr_XX,Wuhan,Wuhan
,,fr_XX,,
,,fr_XX,,
"""
"""Facebook's TICO-19 terminology: five columns, fr_XX, an unquoted comma in a target, junk rows at the end."""

TICO_GOOGLE = '''stringID,sourceLang,targetLang,pos,description,sourceString,targetString
1,en,fr-FR,adjective,"In the context of coronavirus (COVID-19): transmissible by direct or indirect contact with an infected person (describes the disease or the virus, not a person).",contagious,contagieux
2,en,fr-FR,noun,In the context of coronavirus (COVID-19): known cases of people who currently have the disease.,active cases,cas actifs
4,en,fr-FR,proper noun,"Short for ""Centers for Disease Control and Prevention"": a US federal agency.",CDC,CDC (Centers for Disease Control and Prevention des États-Unis)
xx_1,fr-FR,en,,,confinement,lockdown
xx_2,ar,en,,,جائحة,pandemic
5,en,fr-CA,noun,,physical distancing,distanciation physique
6,en,es-419,noun,,physical distancing,distanciamiento físico
'''
"""Google's TICO-19 terminologies, concatenated: en->fr-FR with descriptions, fr-FR->en, other pairs."""

COLUMNS_CSV = "English,French,Notes\nstock,stock,fisheries sense\n\"sea ice\",\"glace de mer\",\nsurvey,relevé,research survey\n"
SEMICOLON_CSV = "\ufeffAnglais;Français;Domaine\nstock;stock;Pêches\nbiomass;biomasse;Pêches\nboat;bateau;Marine\n"

TBX_BASIC = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE martif SYSTEM "TBXBasiccoreStructV02.dtd">
<martif type="TBX-Basic" xml:lang="en-US">
 <martifHeader><fileDesc><sourceDesc><p>Exported termbase</p></sourceDesc></fileDesc>
  <encodingDesc><p type="XCSURI">TBXBasicXCSV02.xcs</p></encodingDesc></martifHeader>
 <text><body>
  <termEntry id="1">
   <descrip type="subjectField">Fisheries</descrip>
   <langSet xml:lang="de"><tig><term>Laicherbestandsbiomasse</term></tig></langSet>
   <langSet xml:lang="fr-CA"><tig><term>biomasse du stock reproducteur</term>
     <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote></tig></langSet>
   <langSet xml:lang="en-GB"><ntig><termGrp><term>SSB</term></termGrp></ntig>
     <ntig><termGrp><term>spawning stock biomass</term>
     <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote></termGrp></ntig>
     <descrip type="definition">The total weight of the mature fish.</descrip></langSet>
  </termEntry>
  <termEntry id="2">
   <descrip type="subjectField">Sports</descrip>
   <langSet xml:lang="en"><tig><term>out</term></tig></langSet>
   <langSet xml:lang="fr"><tig><term>retrait</term></tig></langSet>
  </termEntry>
  <termEntry id="3">
   <descrip type="subjectField">Fisheries</descrip>
   <langSet xml:lang="en"><tig><term>landings</term></tig></langSet>
  </termEntry>
 </body></text>
</martif>
"""

TBX_IATE = """<?xml version="1.0" encoding="UTF-8"?>
<?xml-model href="https://raw.githubusercontent.com/LTAC-Global/TBX-Basic_dialect/master/DCA/TBXcoreStructV03_TBX-Basic_integrated.rng" type="application/xml" schematypens="http://relaxng.org/ns/structure/1.0"?>
<tbx style="dca" type="TBX-Basic" xml:lang="en" xmlns="urn:iso:std:iso:30042:ed-2">
 <tbxHeader><fileDesc><titleStmt><title>IATE export</title></titleStmt><sourceDesc><p>IATE</p></sourceDesc></fileDesc></tbxHeader>
 <text><body>
  <conceptEntry id="3515206">
   <descrip type="subjectField">fisheries;environmental policy</descrip>
   <langSec xml:lang="en">
    <termSec><term>total allowable catch</term><termNote type="termType">fullForm</termNote>
     <descrip type="reliabilityCode">9</descrip></termSec>
    <termSec><term>TAC</term><termNote type="termType">abbreviation</termNote></termSec>
   </langSec>
   <langSec xml:lang="fi"><termSec><term>suurin sallittu saalis</term></termSec></langSec>
   <langSec xml:lang="fr">
    <termSec><term>total admissible des captures</term>
     <termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote></termSec>
    <termSec><term>total autorisé des captures</term></termSec>
   </langSec>
  </conceptEntry>
 </body></text>
</tbx>
"""

TBX_DCT = """<?xml version="1.0" encoding="UTF-8"?>
<tbx style="dct" type="TBX-Basic" xml:lang="en" xmlns="urn:iso:std:iso:30042:ed-2"
     xmlns:basic="http://www.tbxinfo.net/ns/basic">
 <tbxHeader><fileDesc><sourceDesc><p>TBX 3, DCT style</p></sourceDesc></fileDesc></tbxHeader>
 <text><body>
  <conceptEntry id="c1"><basic:subjectField>Fisheries management</basic:subjectField>
   <langSec xml:lang="en"><termSec><term>harvest control rule</term>
    <basic:administrativeStatus>preferredTerm-admn-sts</basic:administrativeStatus></termSec></langSec>
   <langSec xml:lang="fr">
    <termSec><term>règle d'exploitation</term>
     <basic:administrativeStatus>deprecatedTerm-admn-sts</basic:administrativeStatus></termSec>
    <termSec><term>règle de contrôle des prises</term>
     <basic:administrativeStatus>preferredTerm-admn-sts</basic:administrativeStatus></termSec></langSec>
  </conceptEntry>
 </body></text>
</tbx>
"""

TBX_MICROSOFT = ('<?xml version="1.0" encoding="utf-8"?><martif type="TBX" xml:lang="en-US"><martifHeader><fileDesc>'
                 '<sourceDesc><p>Microsoft Terminology Collection</p></sourceDesc></fileDesc></martifHeader><text><body>'
                 '<termEntry id="7_1112"><langSet xml:lang="en-US"><descripGrp><descrip type="definition">The state of '
                 'being connected.</descrip></descripGrp><ntig><termGrp><term id="a1">access</term><termNote '
                 'type="partOfSpeech">Noun</termNote></termGrp></ntig></langSet><langSet xml:lang="fr-FR"><ntig><termGrp>'
                 '<term id="a2">accès</term><termNote type="partOfSpeech">Noun</termNote><termNote type="grammaticalGender">'
                 'masculine</termNote><termNote type="grammaticalNumber">NotSelected</termNote></termGrp></ntig></langSet>'
                 '</termEntry></body></text></martif>')  # fmt: skip


def write_text(text: str, encoding: str = "utf-8", newline: str = "\n") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(text.replace("\n", newline).encode(encoding))

    return write


def write_workbook(path: Path) -> None:
    """A terminologist's workbook: a title row merged over the columns, a blank row, a header with a trailing space,
    padded cells, a number, a formula, formatted empty rows, and a second sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Glossaire"
    sheet["A1"] = "Glossaire – Secteur des sciences"
    sheet.merge_cells("A1:D1")
    sheet.append([])
    sheet.append(["Anglais ", "Français", "Domaine", "Remarque"])
    sheet.append(["  spawning stock biomass ", "biomasse du stock reproducteur", "Pêches", None])
    sheet.append(["Atlantic cod", "morue franche|morue", "Pêches", "=A4&B4"])
    sheet.append([2019, "2019", None, None])
    sheet.append(["grey seal", None, "Pêches", "à traduire"])
    for row in range(10, 14):
        sheet.cell(row=row, column=1).font = Font(bold=True)
    other = book.create_sheet("Sigles")
    other.append(["EN", "FR"])
    other.append(["DFO", "MPO"])
    book.save(path)


@dataclass(frozen=True)
class Termbase:
    file: str
    write: Callable[[Path], None]
    layout: str
    entries: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    skipped: dict[str, int] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    """Extra flags to read it with (--glossary-subject, --glossary-sheet)."""


TERMBASES = {
    "termium-plus": Termbase("Arts,_loisirs_et_sports_Arts,_Recreation_and_Sports_LJ.csv",
                             write_text(codecs.BOM_UTF8.decode("utf-8") + TERMIUM_HEADER + "\n" + TERMIUM_ROWS,
                                        newline="\r\n"),
                             "TERMIUM Plus", TERMIUM_ENTRIES, {"empty": 1, "retired": 1, "duplicates": 1}),
    "termium-plus-subject": Termbase("termium_golf.csv", write_text(TERMIUM_HEADER + "\n" + TERMIUM_ROWS),
                                     "TERMIUM Plus", ((("plant",), ("mettre un pied à terre",)),),
                                     {"other_subject": 11}, ("--glossary-subject", "GOLF")),
    "tico19-facebook": Termbase("f_en-fr_XX.csv", write_text(TICO_FACEBOOK), "term pairs", (
        (("1918 flu",), ("Grippe de 1918",)), (("acute bronchitis",), ("bronchite aiguë",)), (("AIDS",), ("SIDA",)),
        (("Severe Acute Respiratory Syndrome",), ("syndrome respiratoire aigu sévère", "SRAS")),
        (("Wuhan",), ("Wuhan",))), {"empty": 2}),
    "tico19-google": Termbase("tico-19-terminology-google.csv", write_text(TICO_GOOGLE), "term pairs", (
        (("contagious",), ("contagieux",)), (("active cases",), ("cas actifs",)),
        (("CDC",), ("CDC (Centers for Disease Control and Prevention des États-Unis)",)),
        (("lockdown",), ("confinement",)), (("physical distancing",), ("distanciation physique",))),
        {"other_languages": 2}),
    "spreadsheet-csv": Termbase("glossary.csv", write_text(COLUMNS_CSV), "columns ('English', 'French')", (
        (("stock",), ("stock",)), (("sea ice",), ("glace de mer",)), (("survey",), ("relevé",)))),
    "french-excel-csv": Termbase("glossaire.csv", write_text(SEMICOLON_CSV), "columns ('Anglais', 'Français')",
                                 ((("stock",), ("stock",)), (("biomass",), ("biomasse",))), {"other_subject": 1},
                                 ("--glossary-subject", "pêches")),
    "french-excel-ansi-csv": Termbase("glossaire-ansi.csv", write_text(SEMICOLON_CSV[1:], "cp1252", "\r\n"),
                                      "columns ('Anglais', 'Français'), read as Windows-1252",
                                      ((("stock",), ("stock",)), (("biomass",), ("biomasse",)), (("boat",), ("bateau",)))),
    "workbook": Termbase("glossaire.xlsx", write_workbook, "columns ('Anglais', 'Français')", (
        (("spawning stock biomass",), ("biomasse du stock reproducteur",)),
        (("Atlantic cod",), ("morue franche", "morue")), (("2019",), ("2019",))), {"empty": 1}),
    "workbook-sheet": Termbase("sigles.xlsm", write_workbook, "columns ('EN', 'FR')", ((("DFO",), ("MPO",)),),
                               options=("--glossary-sheet", "Sigles")),
    "tbx-basic": Termbase("termbase.tbx", write_text(TBX_BASIC), "TBX", (
        (("spawning stock biomass", "SSB"), ("biomasse du stock reproducteur",)),), {"empty": 1, "other_subject": 1},
        ("--glossary-subject", "fisheries")),
    "tbx-iate": Termbase("IATE_export.tbx", write_text(TBX_IATE, "utf-8-sig"), "TBX", (
        (("total allowable catch", "TAC"), ("total autorisé des captures",)),), options=("--glossary-subject", "fish")),
    "tbx-v3-dct": Termbase("dct.tbx", write_text(TBX_DCT), "TBX", (
        (("harvest control rule",), ("règle de contrôle des prises",)),), options=("--glossary-subject", "fisheries")),
    "tbx-microsoft": Termbase("FRENCH.tbx", write_text(TBX_MICROSOFT), "TBX", ((("access",), ("accès",)),)),
}
