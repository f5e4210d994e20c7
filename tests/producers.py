"""Translation memories as their producers write them: one fixture per producer, each with the habits that producer
has (encodings, declarations, language codes, header fields, inline codes, multilingual units), and what csas must
read from it. The texts are small, but every quirk is the producer's own (the LISA TMX 1.4b specification's example
and compliance-kit files are reproduced as published; the others follow the tools' writers and real exports).

`MEMORIES` maps a fixture's name to a `Memory`: the file's name and bytes, the rows csas reads (source_lang, source,
target, in file order), and the units it skips (no English or no French) and chooses between (several variants of
one language), without --locales; `LOCALES` gives, for some, what a --locales preference changes.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class Memory:
    file: str
    data: bytes
    rows: tuple[tuple[str, str, str], ...]
    """(source_lang, source, target) of every row csas reads, in file order."""
    skipped: int = 0
    variants: int = 0


def utf16le_bom(text: str) -> bytes:
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# -- the LISA TMX 1.4b specification's own example (ttt.org/oscarstandards/tmx/#AppSample), as published ---------

LISA_SPEC = """<?xml version="1.0"?>
<!-- Example of TMX document -->
<tmx version="1.4">
 <header
  creationtool="XYZTool"
  creationtoolversion="1.01-023"
  datatype="PlainText"
  segtype="sentence"
  adminlang="en-us"
  srclang="EN"
  o-tmf="ABCTransMem"
  creationdate="20020101T163812Z"
  creationid="ThomasJ"
  changedate="20020413T023401Z"
  changeid="Amity"
  o-encoding="iso-8859-1"
 >
  <note>This is a note at document level.</note>
  <prop type="RTFPreamble">{\\rtf1\\ansi\\tag etc...{\\fonttbl}</prop>
  <ude name="MacRoman" base="Macintosh">
   <map unicode="#xF8FF" code="#xF0" ent="Apple_logo" subst="[Apple]"/>
  </ude>
 </header>
 <body>
  <tu
   tuid="0001"
   datatype="Text"
   usagecount="2"
   lastusagedate="19970314T023401Z"
  >
   <note>Text of a note at the TU level.</note>
   <prop type="x-Domain">Computing</prop>
   <prop type="x-Project">P&#x00E6;gasus</prop>
   <tuv
    xml:lang="EN"
    creationdate="19970212T153400Z"
    creationid="BobW"
   >
    <seg>data (with a non-standard character: &#xF8FF;).</seg>
   </tuv>
   <tuv
    xml:lang="FR-CA"
    creationdate="19970309T021145Z"
    creationid="BobW"
    changedate="19970314T023401Z"
    changeid="ManonD"
   >
    <prop type="Origin">MT</prop>
    <seg>donn&#xE9;es (avec un caract&#xE8;re non standard: &#xF8FF;).</seg>
   </tuv>
  </tu>
  <tu
   tuid="0002"
   srclang="*all*"
  >
   <prop type="Domain">Cooking</prop>
   <tuv xml:lang="EN">
    <seg>menu</seg>
   </tuv>
   <tuv xml:lang="FR-CA">
    <seg>menu</seg>
   </tuv>
   <tuv xml:lang="FR-FR">
    <seg>menu</seg>
   </tuv>
  </tu>
 </body>
</tmx>
"""

# -- the LISA TMX compliance kit (as OmegaT ships it): XML syntax, languages, encodings, every element -----------

KIT_SYNTAX = """<?xml version="1.0" ?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<tmx version="1.4">
 <header 
creationtoolversion = "1.0.0" 
datatype = 'plaintext' 
segtype="sentence" adminlang="en-us" srclang="en-us" o-tmf="abc" creationtool="XYZTool">
 </header>
 <body   >
  <tu
>
   <tuv\t\txml:lang='eN-uS'><seg>Text of the segment</seg></tuv>
   <tuv     xml:lang= \t\t\t\t
"fR-Ca">
\t<seg>Texte du segment</seg>
</tuv>
  </tu>
 </body>
</tmx>
"""

KIT_LANGUAGES = """<?xml version="1.0" ?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<tmx version="1.4">
 <header creationtool="XYZTool" creationtoolversion="1.0.0" datatype="plaintext" segtype="sentence"
  adminlang="en-us" srclang="en-us" o-tmf="abc"/>
 <body>
  <!-- the tuvs of each unit in another order -->
  <tu>
   <tuv xml:lang="en-us"><seg>Color</seg></tuv>
   <tuv xml:lang="en-gb"><seg>Colour</seg></tuv>
   <tuv xml:lang="ja-jp"><seg>色</seg></tuv>
   <tuv xml:lang="fr-ca"><seg>Couleur</seg></tuv>
   <tuv xml:lang="es-es"><seg>Color</seg></tuv>
  </tu>
  <tu>
   <tuv xml:lang="fr-ca"><seg>Centre</seg></tuv>
   <tuv xml:lang="es-es"><seg>Centro</seg></tuv>
   <tuv xml:lang="en-gb"><seg>Centre</seg></tuv>
   <tuv xml:lang="ja-jp"><seg>中心</seg></tuv>
   <tuv xml:lang="en-us"><seg>Center</seg></tuv>
  </tu>
  <tu srclang='de-de'>
   <tuv xml:lang='de-de'><seg>Datei</seg></tuv>
   <tuv xml:lang='fr-ca'><seg>Fichier</seg></tuv>
   <tuv xml:lang='en-us'><seg>File</seg></tuv>
  </tu>
 </body>
</tmx>
"""

KIT_ELEMENTS = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<!-- Some comments -->
<tmx version="1.4">

  <!-- Some comments -->
 <header creationtool="myTool" creationtoolversion="v10" 
  segtype="block" o-tmf="Text" adminlang="en-us" srclang="en-us" 
  datatype="html" o-encoding="iso-8859-1" 
  creationdate="20020523T091200Z" creationid="ys" 
  changedate="20020523T091200Z" changeid="ys">
  <!-- Some comments -->
  <ude name="MacRoman" base="Macintosh">
   <map unicode="#xF8FF" code="#xF0" ent="AppleLogo" subst="[Apple]"/>
  </ude>
  <note xml:lang="en-us" o-encoding="iso-8859-1">A header note</note>
  <prop type="x-Header" xml:lang="en-us">A header prop</prop>
 </header>
 <!-- Some comments testing the parser... > -> -!> -->
 <body>
  <tu tuid="1" datatype="html" usagecount="3" lastusagedate="20020523T091200Z" creationtool="myTool"
   creationtoolversion="v10" creationdate="20020523T091200Z" creationid="ys" changedate="20020523T091200Z"
   changeid="ys" segtype="block" o-tmf="Text" srclang="en-us" o-encoding="iso-8859-1">
   <!-- Some comments -->
   <note xml:lang="en-us">A unit note</note>
   <prop type="x-Unit">A unit prop</prop>
   <tuv xml:lang="en-us" datatype="html" usagecount="3" creationid="ys">
    <prop type="x-Tuv">One</prop>
    <note>Two</note>
    <prop type="x-Tuv">Three</prop>
    <note>Four</note>
    <seg><it x="1" pos="begin" type="italic">&lt;I></it><bpt x="2" i="1" type="bold">&lt;B></bpt>Click <ph x="3" type="image" assoc="b">&lt;IMG SRC="here.png" ALT="<sub>Start Here!</sub>"></ph> to <hi type="verb" x="4">start</hi>.<ept i="1">&lt;/B></ept></seg>
   </tuv>
   <tuv xml:lang="fr-ca">
    <seg><it x="1" pos="begin" type="italic">&lt;I></it><bpt x="2" i="1" type="bold">&lt;B></bpt>Cliquez <ph x="3" type="image" assoc="b">&lt;IMG SRC="ici.png" ALT="<sub>Commencez ici !</sub>"></ph> pour <hi type="verb" x="4">commencer</hi>.<ept i="1">&lt;/B></ept></seg>
   </tuv>
  </tu>
  <tu>
   <tuv xml:lang="en-us"><seg>Test for special characters = <bpt i="1" x="1">&lt;b></bpt>&lt;<ept i="1">&lt;/b></ept>=lt, <bpt i="2" x="2">&lt;b></bpt>&amp;<ept i="2">&lt;/b></ept>=amp, &amp;lt; is escaped twice.</seg></tuv>
   <tuv xml:lang="fr-ca"><seg>Caractères spéciaux = <bpt i="1" x="1">&lt;b></bpt>&lt;<ept i="1">&lt;/b></ept>=lt, <bpt i="2" x="2">&lt;b></bpt>&amp;<ept i="2">&lt;/b></ept>=amp, &amp;lt; est échappé deux fois.</seg></tuv>
  </tu>
 </body>
</tmx>
<!-- Some comments after the root -->
"""

KIT_UNIT = ('<tu><tuv xml:lang="en-us"><seg>Caf&#xe9; and cr&#232;me</seg></tuv>'
            '<tuv xml:lang="fr-ca"><seg>Café et crème</seg></tuv></tu>')  # fmt: skip


def kit_encoding(declaration: str, unit: str = KIT_UNIT) -> str:
    return (f'<?xml version="1.0" {declaration}?>\n<tmx version="1.4">\n<header creationtool="XYZTool" '
            'creationtoolversion="1.0.0" datatype="plaintext" segtype="sentence" adminlang="en-us" srclang="en-us" '
            f'o-tmf="abc"/>\n<body>\n{unit}\n</body>\n</tmx>\n')  # fmt: skip


CAFE = (("en", "Café and crème", "Café et crème"),)

# -- OmegaT: project_save.tmx is TMX 1.1 with lang=, default and alternative translations, a header of one element

OMEGAT_6 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx SYSTEM "tmx11.dtd">
<tmx version="1.1">
  <header creationtool="OmegaT" o-tmf="OmegaT TMX" adminlang="EN-US" datatype="plaintext" creationtoolversion="6.1.0_0_1bf1729c" segtype="sentence" srclang="en-CA"/>
  <body>
<!-- Default translations -->
    <tu>
      <tuv lang="en-CA">
        <seg>The stock is in the Critical Zone.</seg>
      </tuv>
      <tuv lang="fr-CA" changeid="Marie" changedate="20231106T141530Z" creationid="Marie" creationdate="20231106T141530Z">
        <seg>Le stock se trouve dans la zone critique.</seg>
      </tuv>
    </tu>
    <tu>
      <prop type="x-auto">auto</prop>
      <tuv lang="en-CA">
        <seg>Landings increased
in 2022.</seg>
      </tuv>
      <tuv lang="fr-CA" changeid="Marie" changedate="20231106T141612Z" creationid="Marie" creationdate="20231106T141612Z">
        <seg>Les débarquements ont augmenté
en 2022.</seg>
      </tuv>
    </tu>
<!-- Alternative translations -->
    <tu>
      <prop type="file">SAR-2023-045_en.docx</prop>
      <prop type="id">0_12</prop>
      <prop type="prev">Figure 3.</prop>
      <prop type="next">Source: DFO.</prop>
      <prop type="x-ice">0_12</prop>
      <note>Translator's note: keep the table reference.</note>
      <tuv lang="en-CA">
        <seg>See Table 2.</seg>
      </tuv>
      <tuv lang="fr-CA" changeid="Marie" changedate="20231106T142001Z" creationid="Marie" creationdate="20231106T142001Z">
        <seg>Voir le tableau 2.</seg>
      </tuv>
    </tu>
  </body>
</tmx>
"""
"""OmegaT 6.1's project_save.tmx (TMX 1.1, lang=, a multi-line segment saved with Windows line ends)."""

OMEGAT_4 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx SYSTEM "tmx11.dtd">
<tmx version="1.1">
  <header creationtool="OmegaT" o-tmf="OmegaT TMX" adminlang="EN-US" datatype="plaintext" creationtoolversion="4.2.0_0_6a661c5e" segtype="sentence" srclang="en"/>
  <body>
<!-- Default translations -->
    <tu>
      <tuv lang="en">
        <seg>&lt;b0&gt;Summary&lt;/b0&gt;</seg>
      </tuv>
      <tuv lang="fr" changeid="jd" changedate="20200214T101010Z" creationid="jd" creationdate="20200214T101010Z">
        <seg>&lt;b0&gt;Sommaire&lt;/b0&gt;</seg>
      </tuv>
    </tu>
    <tu>
      <tuv lang="en">
        <seg>The stock is in the &lt;f0&gt;Healthy Zone&lt;/f0&gt;.</seg>
      </tuv>
      <tuv lang="fr">
        <seg>Le stock se trouve dans la &lt;f0&gt;zone saine&lt;/f0&gt;.</seg>
      </tuv>
    </tu>
    <tu>
      <tuv lang="en">
        <seg>Untranslated orphan.</seg>
      </tuv>
    </tu>
    <tu>
      <tuv lang="en">
        <seg>"My anger consumes me.</seg>
      </tuv>
      <tuv lang="ru">
        <seg>"Злость поглощает меня.</seg>
      </tuv>
    </tu>
  </body>
</tmx>
"""
"""OmegaT 4.2's project memory: a unit with no translation, a unit of another project language (both skipped), and
OmegaT's own tags (`<b0>`, the formatting of the original) written as escaped text, which are dropped."""

# -- Trados Translator's Workbench 7 and 8: UTF-16LE with a byte order mark, no encoding declared, CRLF ----------

TW4WIN_HEADER = """<?xml version="1.0" ?>
<!DOCTYPE tmx SYSTEM "tmx14.dtd">
<tmx version="1.4">
<header
\t creationtool="TRADOS Translator's Workbench for Windows"
\t creationtoolversion="Edition {edition}"
\t segtype="sentence"
\t o-tmf="TW4Win 2.0 Format"
\t adminlang="EN-US"
\t srclang="EN-US"
\t datatype="rtf"
\t creationdate="20070223T044327Z"
\t creationid="CSAS"
>
<prop type="RTFFontTable">
{{\\fonttbl
{{\\f1\\fmodern\\fcharset0\\fprq1{{\\*\\panose 02070309020205020404}}Courier New;}}
{{\\f2\\froman\\fcharset0\\fprq2{{\\*\\panose 02020603050405020304}}Times New Roman;}}}}
</prop>
<prop type="RTFStyleSheet">
{{\\stylesheet
{{\\St \\cs1 {{\\StB \\v\\f1\\fs20\\cf12\\lang1024\\sub }}{{\\StN tw4winMark}}}}
{{\\St \\cs2 {{\\StB \\f1\\cf6\\lang1024 }}{{\\StN tw4winInternal}}}}}}
</prop>
</header>
<body>
"""

TW4WIN_UNITS = """<tu creationdate="20070314T060143Z" creationid="TESTA" changedate="20070314T060951Z" changeid="TESTB" lastusagedate="20080101T000000Z" usagecount="4">
<prop type="Txt::Client">DFO</prop>
<prop type="Att::Subject">Fisheries</prop>
<tuv {attr}="EN-US">
<seg>The <ut>{{\\b </ut>spawning stock biomass<ut>}}</ut> declined.</seg>
</tuv>
<tuv {attr}="FR-CA">
<seg>La <ut>{{\\b </ut>biomasse du stock reproducteur<ut>}}</ut> a diminué.</seg>
</tuv>
</tu>
<tu creationdate="20070314T060143Z" creationid="TESTA">
<tuv {attr}="FR-CA">
<seg>Débarquements (t) &amp;amp;lt; 500</seg>
</tuv>
<tuv {attr}="EN-US">
<seg>Landings (t) &amp;amp;lt; 500</seg>
</tuv>
</tu>
<tu creationdate="20070314T061000Z" creationid="TESTA">
<tuv {attr}="EN-US">
<seg><ut>{{\\cs6\\f1\\cf6\\lang1024 </ut>&lt;cf size=&quot;8&quot; bold=&quot;on&quot;&gt;<ut>}}</ut>Determination of the limit reference point<ut>{{\\cs6\\f1\\cf6\\lang1024 </ut>&lt;/cf&gt;<ut>}}</ut></seg>
</tuv>
<tuv {attr}="FR-CA">
<seg><ut>{{\\cs6\\f1\\cf6\\lang1024 </ut>&lt;cf size=&quot;8&quot; bold=&quot;on&quot;&gt;<ut>}}</ut>Détermination du point de référence limite<ut>{{\\cs6\\f1\\cf6\\lang1024 </ut>&lt;/cf&gt;<ut>}}</ut></seg>
</tuv>
</tu>
<tu creationdate="20070315T101010Z" creationid="TESTA">
<tuv {attr}="EN-US">
<seg>Figure<ut>{{\\super </ut>1<ut>}}</ut> shows the index.<ut>{{\\tab}}</ut>Index</seg>
</tuv>
<tuv {attr}="DE-DE">
<seg>Abbildung 1 zeigt den Index.</seg>
</tuv>
</tu>
</body>
</tmx>
"""
"""Workbench exports: RTF codes in `<ut>`; the target may come first; `&amp;amp;lt;` is the text `&amp;lt;` as the
exporter escaped it; a TagEditor file's tags as text in the tw4winInternal style; a unit with only a German
translation is skipped."""

TW4WIN_ROWS = (
    ("en", "The spawning stock biomass declined.", "La biomasse du stock reproducteur a diminué."),
    ("en", "Landings (t) &amp;lt; 500", "Débarquements (t) &amp;lt; 500"),
    ("en", "Determination of the limit reference point", "Détermination du point de référence limite"),
)

# -- SDL Trados Studio: UTF-8 with a byte order mark, field definitions in the header, empty inline tags ---------

STUDIO = """<?xml version="1.0" encoding="utf-8"?>
<tmx version="1.4">
  <header creationtool="SDL Language Platform" creationtoolversion="8.0" o-tmf="SDL TM8 Format" datatype="xml" segtype="sentence" adminlang="fr-FR" srclang="fr-CA" creationdate="20190903T145309Z" creationid="CSAS\\translator">
    <prop type="x-Status:MultiplePicklist">Approved,New,Read Only</prop>
    <prop type="x-Text Field:MultipleString"></prop>
    <prop type="x-Recognizers">RecognizeAll</prop>
    <prop type="x-TMName">CSAS_FR_EN</prop>
  </header>
  <body>
    <tu creationdate="20190730T095222Z" creationid="CSAS\\translator" changedate="20190929T143902Z" changeid="CSAS\\reviewer" lastusagedate="20191227T181136Z" usagecount="5">
      <prop type="x-pub_number:SingleString">2019/045</prop>
      <prop type="x-Context">0, 0</prop>
      <prop type="x-Origin">TM</prop>
      <prop type="x-ConfirmationLevel">ApprovedSignOff</prop>
      <prop type="x-Status:MultiplePicklist">Approved</prop>
      <tuv xml:lang="fr-CA">
        <seg>Cliquez sur <bpt i="1" type="1" x="1" />Enregistrer<ept i="1" /> pour <ph type="2" /> garder les modifications.</seg>
      </tuv>
      <tuv xml:lang="en-CA">
        <seg>Click <bpt i="1" type="1" x="1" />Save<ept i="1" /> to <ph type="2" /> keep the changes.</seg>
      </tuv>
    </tu>
    <tu creationdate="20190730T095300Z" creationid="CSAS\\translator">
      <tuv xml:lang="fr-CA">
        <seg>Prix&#160;:<ph type="3" />&#160;10 $</seg>
      </tuv>
      <tuv xml:lang="en-CA">
        <seg>Price: <ph type="3" /> $10</seg>
      </tuv>
    </tu>
    <tu creationdate="20190730T095400Z" creationid="CSAS\\translator">
      <tuv xml:lang="fr-CA">
        <seg>Tableau 3.<ph x="1" type="0" />Débarquements (t)<ph>&lt;br/&gt;</ph>par flottille</seg>
      </tuv>
      <tuv xml:lang="en-CA">
        <seg>Table 3.<ph x="1" type="0" />Landings (t)<ph>&lt;br/&gt;</ph>by fleet</seg>
      </tuv>
    </tu>
  </body>
</tmx>
"""

# -- Olifant (Okapi): its flag and picklist props -----------------------------------------------------------------

OLIFANT = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="Olifant" creationtoolversion="2.0.3.0" segtype="sentence" o-tmf="unknown" adminlang="en" srclang="en-ca" datatype="unknown"><prop type="x-olf-flag">0</prop></header><body>
<tu tuid="1"><prop type="x-olf-flag">1</prop><prop type="att::Domain">Science</prop><prop type="x-als:Status">Final</prop><tuv xml:lang="en-ca"><seg>Peer review meeting</seg></tuv><tuv xml:lang="fr-ca"><seg>Réunion d'examen par les pairs</seg></tuv></tu>
<tu tuid="2"><tuv xml:lang="en-ca"><seg>Meeting dates</seg></tuv><tuv xml:lang="fr-ca"><seg>Dates de la réunion</seg></tuv><tuv xml:lang="fr-fr"><seg>Dates de réunion</seg></tuv></tu>
</body></tmx>"""

# -- Swordfish / OpenXLIFF (Maxprograms): a PUBLIC doctype, trailing spaces, zero-based codes, no final newline ---

OPENXLIFF = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tmx PUBLIC "-//LISA OSCAR:1998//DTD for Translation Memory eXchange//EN" "tmx14.dtd" >
<tmx version="1.4">
<header 
      creationtool="OpenXLIFF" 
      creationtoolversion="3.20.0" 
      srclang="en-US" 
      adminlang="en"  
      datatype="xml" 
      o-tmf="XLIFF" 
      segtype="block"
>
</header>
<body>
<tu creationtool="OpenXLIFF" creationtoolversion="3.20.0" tuid="-1234567-0-98765" creationdate="20240101T120000Z">
<prop type="project">CSAS research documents</prop>
<prop type="subject">Fisheries</prop>
<note xml:lang="en">Approved</note>
<tuv xml:lang="en-US" creationdate="20240101T120000Z">
<seg>Click <bpt type="xliff-g" i="0">&lt;g id="1"&gt;</bpt>here<ept i="0">&lt;/g&gt;</ept> <ph type="xliff-x">&lt;x id="2"/&gt;</ph> for <hi type="x">details</hi>.</seg>
</tuv>
<tuv xml:lang="fr-CA" creationdate="20240101T120000Z">
<seg>Cliquez <bpt type="xliff-g" i="0">&lt;g id="1"&gt;</bpt>ici<ept i="0">&lt;/g&gt;</ept> <ph type="xliff-x">&lt;x id="2"/&gt;</ph> pour les <hi type="x">détails</hi>.</seg>
</tuv>
</tu>
</body>
</tmx>"""

# -- DGT-TM (the European Commission's Euramis memories): UTF-16LE, lang=, -01 codes, many languages per unit -----

DGT_LANGUAGES = ("BG-01", "CS-01", "DA-01", "DE-DE", "EL-01", "EN-GB", "ES-ES", "ET-01", "FI-01", "FR-FR", "GA-IE",
                 "HR-HR", "HU-01", "IT-IT", "LT-01", "LV-01", "MT-01", "NL-NL", "PL-01", "PT-PT", "RO-RO", "SK-01",
                 "SL-01", "SV-SE")  # fmt: skip
DGT_UNITS = (
    ("32006D0241", {"EN-GB": "THE COUNCIL OF THE EUROPEAN COMMUNITIES,",
                    "FR-FR": "LE CONSEIL DES COMMUNAUTÉS EUROPÉENNES,"}),
    ("32006D0241", {"EN-GB": "Article 1", "FR-FR": "Article premier"}),
    ("32006D0241", {"EN-GB": "Done at Brussels, 24 March 2006."}),  # French missing from the published unit
    ("21970A0720(01)", {"EN-GB": "Fishery products shall be labelled.",
                        "FR-FR": "Les produits de la pêche sont étiquetés."}),
    ("21970A0720(01)", {"FR-FR": "Annexe", "DE-DE": "Anhang"}),  # English missing
)  # fmt: skip


def dgt(declaration: str) -> str:
    units = []
    for doc, texts in DGT_UNITS:
        tuvs = "".join(f"<tuv lang=\"{code}\">\n<seg>{texts.get(code, code.lower() + ' ' + doc)}</seg>\n</tuv>\n"
                       for code in DGT_LANGUAGES if code in texts or code not in ("EN-GB", "FR-FR"))  # fmt: skip
        units.append(f"<tu>\n<prop type=\"Txt::Doc. No.\">{doc}</prop>\n{tuvs}</tu>\n")
    return (f"{declaration}\n<tmx version=\"1.4\">\n<header o-tmf=\"Euramis\" creationtool=\"tm3\" "
            "creationtoolversion=\"Retrieval v8.71 from 11-03-2019 10:05\" segtype=\"sentence\" datatype=\"PlainText\" "
            f"adminlang=\"EN-US\" srclang=\"EN-GB\">\n</header>\n<body>\n{''.join(units)}</body>\n</tmx>\n")  # fmt: skip


DGT_ROWS = (
    ("en", "THE COUNCIL OF THE EUROPEAN COMMUNITIES,", "LE CONSEIL DES COMMUNAUTÉS EUROPÉENNES,"),
    ("en", "Article 1", "Article premier"),
    ("en", "Fishery products shall be labelled.", "Les produits de la pêche sont étiquetés."),
)

# -- TICO-19's memory: header and body on one line, an empty </header>, the source URL in a prop ----------------

TICO19 = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="unknown" creationtoolversion="unknown" segtype="paragraph" o-tmf="unknown" adminlang="en" srclang="en" datatype="text"></header><body>
<tu tuid="CMU_1:1">
<prop type="note">http://www.speech.cs.cmu.edu/haitian/text/1600_medical_domain_sentences.en</prop>
<tuv xml:lang="en">
<seg>about how long have these symptoms been going on?</seg></tuv>
<tuv xml:lang="fr"><seg>depuis combien ressentez-vous ces symptômes ?</seg></tuv>
</tu>
<tu tuid="wiki_9:3042">
<prop type="note">https://en.wikipedia.org/wiki/COVID-19_pandemic</prop>
<tuv xml:lang="en">
<seg>i&apos;m worried about my father’s cough.</seg></tuv>
<tuv xml:lang="fr"><seg>je m&apos;inquiète de la toux de mon père.</seg></tuv>
</tu>
</body>
</tmx>
"""

# -- a Canadian memory with both French variants and both English variants in one unit ---------------------------

REGIONAL = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="csas-fixture" creationtoolversion="1" segtype="sentence" o-tmf="x" adminlang="en" srclang="en-US" datatype="plaintext"/><body>
<tu><tuv xml:lang="en-US"><seg>The color of the harbor.</seg></tuv><tuv xml:lang="fr-FR"><seg>La couleur du port (France).</seg></tuv><tuv xml:lang="fr-CA"><seg>La couleur du port (Canada).</seg></tuv><tuv xml:lang="en-GB"><seg>The colour of the harbour.</seg></tuv></tu>
<tu><tuv xml:lang="fr-CA"><seg>Courriel</seg></tuv><tuv xml:lang="en-US"><seg>Email</seg></tuv></tu>
<tu><tuv xml:lang="fr-ca"><seg>Fin de semaine</seg></tuv><tuv xml:lang="FR-CA"><seg>Week-end</seg></tuv><tuv xml:lang="en-us"><seg>Weekend</seg></tuv></tu>
</body></tmx>
"""

MEMORIES = {
    "lisa-spec": Memory("spec.tmx", LISA_SPEC.encode("utf-8"), (
        ("en", "data (with a non-standard character: \uf8ff).", "données (avec un caractère non standard: \uf8ff)."),
        ("en", "menu", "menu"), ("fr", "menu", "menu")), variants=1),
    "kit-syntax": Memory("ImportTest1B.tmx", KIT_SYNTAX.encode("utf-8"),
                         (("en", "Text of the segment", "Texte du segment"),)),
    "kit-languages": Memory("ImportTest1C.tmx", KIT_LANGUAGES.encode("utf-8"), (
        ("en", "Color", "Couleur"), ("en", "Centre", "Centre"), ("en", "File", "Fichier"), ("fr", "Fichier", "File")),
        variants=2),
    "kit-elements": Memory("ImportTest2C.tmx", KIT_ELEMENTS.encode("utf-8"), (
        ("en", "Click to start.", "Cliquez pour commencer."),
        ("en", "Test for special characters = <=lt, &=amp, &lt; is escaped twice.",
         "Caractères spéciaux = <=lt, &=amp, &lt; est échappé deux fois."))),
    "kit-utf8-bom": Memory("ImportTest1D.tmx", codecs.BOM_UTF8 + kit_encoding('encoding="UTF-8"').encode("utf-8"),
                           CAFE),
    "kit-utf16le": Memory("ImportTest1F.tmx", utf16le_bom(kit_encoding('encoding="UTF-16"')), CAFE),
    "kit-utf16be": Memory("ImportTest1G.tmx", codecs.BOM_UTF16_BE + kit_encoding('encoding="UTF-16"')
                          .encode("utf-16-be"), CAFE),
    "kit-ascii": Memory("ImportTest1H.tmx", kit_encoding('encoding="us-ascii"', KIT_UNIT.replace(
        "Café et crème", "Caf&#xE9; et cr&#xE8;me")).encode("ascii"), CAFE),
    "omegat-6.1": Memory("project_save.tmx", crlf(OMEGAT_6).encode("utf-8"), (
        ("en", "The stock is in the Critical Zone.", "Le stock se trouve dans la zone critique."),
        ("en", "Landings increased in 2022.", "Les débarquements ont augmenté en 2022."),
        ("en", "See Table 2.", "Voir le tableau 2."))),
    "omegat-4.2": Memory("omegat-4.2.tmx", OMEGAT_4.encode("utf-8"), (
        ("en", "Summary", "Sommaire"), ("en", "The stock is in the Healthy Zone.", "Le stock se trouve dans la zone saine.")),
        skipped=2),
    "trados-tw4win-7": Memory("tw4win7.tmx", utf16le_bom(crlf(TW4WIN_HEADER.format(edition="7 Build 756")
                                                         + TW4WIN_UNITS.format(attr="lang"))), TW4WIN_ROWS, skipped=1),
    "trados-tw4win-8": Memory("tw4win8.tmx", utf16le_bom(crlf(TW4WIN_HEADER.format(edition="8 Build 863")
                                                         + TW4WIN_UNITS.format(attr="xml:lang"))), TW4WIN_ROWS,
                              skipped=1),
    "trados-studio": Memory("studio.tmx", codecs.BOM_UTF8 + STUDIO.encode("utf-8"), (
        ("fr", "Cliquez sur Enregistrer pour garder les modifications.", "Click Save to keep the changes."),
        ("fr", "Prix\u00a0:\u00a010 $", "Price: $10"),
        ("fr", "Tableau 3. Débarquements (t) par flottille", "Table 3. Landings (t) by fleet"))),
    "olifant": Memory("olifant.tmx", OLIFANT.encode("utf-8"), (
        ("en", "Peer review meeting", "Réunion d'examen par les pairs"),
        ("en", "Meeting dates", "Dates de la réunion")), variants=1),
    "openxliff": Memory("swordfish.tmx", OPENXLIFF.encode("utf-8"),
                        (("en", "Click here for details.", "Cliquez ici pour les détails."),)),
    "dgt-tm": Memory("Vol_2006_1.tmx", utf16le_bom(crlf(dgt('<?xml version="1.0" encoding="UTF-16LE"?>'))),
                     DGT_ROWS, skipped=2),
    "dgt-tm-no-declared-encoding": Memory("Vol_2019_1.tmx", utf16le_bom(dgt('<?xml version="1.0"?>')), DGT_ROWS,
                                          skipped=2),
    "tico-19": Memory("all.en-fr.tmx", TICO19.encode("utf-8"), (
        ("en", "about how long have these symptoms been going on?", "depuis combien ressentez-vous ces symptômes ?"),
        ("en", "i'm worried about my father’s cough.", "je m'inquiète de la toux de mon père."))),
    "regional-variants": Memory("regional.tmx", REGIONAL.encode("utf-8"), (
        ("en", "The color of the harbor.", "La couleur du port (France)."), ("en", "Email", "Courriel"),
        ("en", "Weekend", "Fin de semaine")), variants=2),
}

LOCALES = {
    ("regional-variants", "fr-CA,en-GB"): (
        ("en", "The colour of the harbour.", "La couleur du port (Canada)."), ("en", "Email", "Courriel"),
        ("en", "Weekend", "Fin de semaine")),
    ("lisa-spec", "fr-FR"): MEMORIES["lisa-spec"].rows,
    ("kit-languages", "en-GB"): (("en", "Colour", "Couleur"), ("en", "Centre", "Centre"), ("en", "File", "Fichier"),
                                 ("fr", "Fichier", "File")),
    ("olifant", "FR_fr"): (("en", "Peer review meeting", "Réunion d'examen par les pairs"),
                           ("en", "Meeting dates", "Dates de réunion")),
}
"""(fixture, --locales) -> the rows read with that preference."""
