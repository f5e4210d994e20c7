#!/usr/bin/env python3
"""Generate csas_cli/assets/sample_pairs.jsonl: synthetic English/French sentence pairs in the style of Canadian
Science Advisory Secretariat (CSAS) fisheries and ocean science reports; csas_cli/assets/heldout_pairs.jsonl, more
of the same from later publications (2025-2026) that the demo scores translations on; and
csas_cli/assets/pretrain_pairs.jsonl, general sentences on the same subjects that the tiny offline base models are
pretrained on.

Deterministic and standard library only: rerunning it rewrites the three shipped files byte for byte.

    python scripts/make_sample_data.py [--out PATH] [--heldout-out PATH] [--pretrain-out PATH] [--rows 3000]

The two files come from disjoint template lists (TEMPLATES for the domain file, PRETRAIN_TEMPLATES for the
pretraining file) filled from the same slot values: a base pretrained on the second knows the words, names and
number formats of both languages, and fine-tuning it on the first teaches it the CSAS phrasing it has never seen.

Every sentence comes from a template pair (English, French) with slots. Slot values are chosen together with their
French forms and genders, so the French side keeps articles, elision (l'aiglefin, de l'OPANO), contractions (du, au)
and past-participle/adjective agreement (la biomasse ... a été estimée, le recrutement ... a été estimé) correct.
Numbers follow each language's conventions: 12,500 t / 12 500 t, 0.35 / 0,35, 35% / 35 %, 1.8°C / 1,8 °C.
French uses plain spaces (not non-breaking spaces) so that SentencePiece's NFKC normalisation leaves the text intact.

Sentence types are not equally common: the domain file draws its templates with Zipf weights (a seeded ranking,
weight 1/rank), as sentence types are distributed in real reports.

Each publication (pub_number "YYYY/NNN") is about one stock and was written in one language (half English, half
French); its rows are (source, target) in that direction, so roughly half the rows are en->fr and half fr->en.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "csas_cli" / "assets" / "sample_pairs.jsonl"
DEFAULT_SEED = 20240917
DEFAULT_ROWS = 3000
DEFAULT_PUBS = 150
DEFAULT_PRETRAIN_OUT = DEFAULT_OUT.with_name("pretrain_pairs.jsonl")
DEFAULT_HELDOUT_OUT = DEFAULT_OUT.with_name("heldout_pairs.jsonl")
YEARS = (2010, 2024)
HELDOUT_SEED = 20240920
HELDOUT_ROWS = 400
HELDOUT_PUBS = 20
HELDOUT_YEARS = (2025, 2026)
"""The held-out file: later publications of the same domain (same sentence types and frequencies), no sentence of
which is in the domain file, so scores on it measure translation of unseen text."""
PRETRAIN_SEED = 20240918
PRETRAIN_ROWS = 8000
PRETRAIN_PUBS = 400
PRETRAIN_JOINED = 0.3  # share of pretraining rows that join two sentences
MIN_WORDS, MAX_WORDS = 5, 45
ZIPF_EXPONENT = 1.3
"""Sentence types of the domain file follow Zipf's law, as in real report corpora: a few (captions, trend
statements, boilerplate) make up much of the text and many are rare."""

# Every accented letter of French that the shipped French text must contain (tokenizer coverage).
FRENCH_LETTERS = "àâæçéèêëîïôœùûüÿÀÉÎŒ"
# Letters, digits and punctuation the whole file must contain.
REQUIRED_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:?()[]'\"%/*+-=<>"


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# --------------------------------------------------------------------------------------------------------------------
# Slot values. French noun phrases carry gender ("m"/"f") and whether they elide ("l'", "de l'"); "h aspiré" words
# (hareng, homard) do not elide.
# --------------------------------------------------------------------------------------------------------------------


class NP:
    """A French noun phrase without article, with the forms templates need."""

    def __init__(self, bare: str, gender: str, elide: bool = False, plural: bool = False):
        self.bare, self.gender, self.elide, self.plural = bare, gender, elide, plural

    @property
    def le(self) -> str:
        if self.plural:
            return "les " + self.bare
        if self.elide:
            return "l'" + self.bare
        return ("la " if self.gender == "f" else "le ") + self.bare

    @property
    def du(self) -> str:
        if self.plural:
            return "des " + self.bare
        if self.elide:
            return "de l'" + self.bare
        return ("de la " if self.gender == "f" else "du ") + self.bare

    @property
    def au(self) -> str:
        if self.plural:
            return "aux " + self.bare
        if self.elide:
            return "à l'" + self.bare
        return ("à la " if self.gender == "f" else "au ") + self.bare

    @property
    def de(self) -> str:
        """Partitive without article: 'de morue franche', "d'aiglefin", 'de hareng'."""
        return ("d'" if self.elide else "de ") + self.bare

    @property
    def e(self) -> str:
        """Agreement suffix of a past participle or adjective: '' or 'e' (plus 's' when plural)."""
        return ("e" if self.gender == "f" else "") + ("s" if self.plural else "")


# Species: English name, French noun phrase.
SPECIES = {
    "cod": ("Atlantic cod", NP("morue franche", "f")),
    "plaice": ("American plaice", NP("plie canadienne", "f")),
    "herring": ("Atlantic herring", NP("hareng de l'Atlantique", "m")),
    "mackerel": ("Atlantic mackerel", NP("maquereau bleu", "m")),
    "turbot": ("Greenland halibut", NP("flétan du Groenland", "m")),
    "halibut": ("Atlantic halibut", NP("flétan de l'Atlantique", "m")),
    "shrimp": ("northern shrimp", NP("crevette nordique", "f")),
    "crab": ("snow crab", NP("crabe des neiges", "m")),
    "lobster": ("American lobster", NP("homard d'Amérique", "m")),
    "capelin": ("capelin", NP("capelan", "m")),
    "whitehake": ("white hake", NP("merluche blanche", "f")),
    "yellowtail": ("yellowtail flounder", NP("limande à queue jaune", "f")),
    "witch": ("witch flounder", NP("plie grise", "f")),
    "haddock": ("haddock", NP("aiglefin", "m", elide=True)),
    "pollock": ("pollock", NP("goberge", "f")),
    "winterfl": ("winter flounder", NP("plie rouge", "f")),
    "scallop": ("sea scallop", NP("pétoncle géant", "m")),
    "acadianred": ("Acadian redfish", NP("sébaste acadien", "m")),
    "deepred": ("deepwater redfish", NP("sébaste atlantique", "m")),
    "wolffish": ("Atlantic wolffish", NP("loup atlantique", "m")),
    "skate": ("thorny skate", NP("raie épineuse", "f")),
    "dogfish": ("spiny dogfish", NP("aiguillat commun", "m", elide=True)),
    "silverhake": ("silver hake", NP("merlu argenté", "m")),
    "eel": ("American eel", NP("anguille d'Amérique", "f", elide=True)),
    "sturgeon": ("Atlantic sturgeon", NP("esturgeon noir", "m", elide=True)),
    "bass": ("striped bass", NP("bar rayé", "m")),
    "char": ("Arctic char", NP("omble chevalier", "m", elide=True)),
    "cucumber": ("sea cucumber", NP("concombre de mer", "m")),
    "whelk": ("waved whelk", NP("buccin commun", "m")),
}

# Regions: English with article, English locative, French noun phrase, French locative.
class Region:
    def __init__(self, en: str, en_in: str, fr: NP, fr_in: str):
        self.en, self.en_in, self.fr, self.fr_in = en, en_in, fr, fr_in


def _in(np: NP) -> str:
    return "dans " + np.le


REGIONS = {
    "sgsl": Region(
        "the southern Gulf of St. Lawrence",
        "in the southern Gulf of St. Lawrence",
        NP("sud du golfe du Saint-Laurent", "m"),
        "dans le sud du golfe du Saint-Laurent",
    ),
    "ngsl": Region(
        "the northern Gulf of St. Lawrence",
        "in the northern Gulf of St. Lawrence",
        NP("nord du golfe du Saint-Laurent", "m"),
        "dans le nord du golfe du Saint-Laurent",
    ),
    "gsl": Region(
        "the Gulf of St. Lawrence",
        "in the Gulf of St. Lawrence",
        NP("golfe du Saint-Laurent", "m"),
        "dans le golfe du Saint-Laurent",
    ),
    "nl": Region(
        "Newfoundland and Labrador",
        "in Newfoundland and Labrador",
        NP("Terre-Neuve-et-Labrador", "f"),
        "à Terre-Neuve-et-Labrador",
    ),
    "southcoast": Region(
        "the south coast of Newfoundland",
        "on the south coast of Newfoundland",
        NP("côte sud de Terre-Neuve", "f"),
        "sur la côte sud de Terre-Neuve",
    ),
    "banks": Region(
        "the Grand Banks", "on the Grand Banks", NP("Grands Bancs", "m", plural=True), "sur les Grands Bancs"
    ),
    "fundy": Region("the Bay of Fundy", "in the Bay of Fundy", NP("baie de Fundy", "f"), "dans la baie de Fundy"),
    "wss": Region(
        "the western Scotian Shelf",
        "on the western Scotian Shelf",
        NP("ouest du plateau néo-écossais", "m", elide=True),
        "dans l'ouest du plateau néo-écossais",
    ),
    "ss": Region(
        "the Scotian Shelf", "on the Scotian Shelf", NP("plateau néo-écossais", "m"), "sur le plateau néo-écossais"
    ),
    "ssgb": Region(
        "the Scotian Shelf and southern Grand Banks",
        "on the Scotian Shelf and southern Grand Banks",
        NP("plateau néo-écossais et du sud des Grands Bancs", "m"),
        "sur le plateau néo-écossais et le sud des Grands Bancs",
    ),
    "atl": Region("Atlantic Canada", "in Atlantic Canada", NP("Canada atlantique", "m"), "dans le Canada atlantique"),
    "estuary": Region(
        "the St. Lawrence Estuary",
        "in the St. Lawrence Estuary",
        NP("estuaire du Saint-Laurent", "m", elide=True),
        "dans l'estuaire du Saint-Laurent",
    ),
    "magdalen": Region(
        "the Magdalen Islands",
        "around the Magdalen Islands",
        NP("Îles-de-la-Madeleine", "f", plural=True),
        "aux Îles-de-la-Madeleine",
    ),
    "pei": Region(
        "the waters around Prince Edward Island",
        "in the waters around Prince Edward Island",
        NP("eaux entourant l'Île-du-Prince-Édouard", "f", elide=True, plural=True),
        "dans les eaux entourant l'Île-du-Prince-Édouard",
    ),
    "labshelf": Region(
        "the Labrador Shelf", "on the Labrador Shelf", NP("plateau du Labrador", "m"), "sur le plateau du Labrador"
    ),
    "hudson": Region("Hudson Bay", "in Hudson Bay", NP("baie d'Hudson", "f"), "dans la baie d'Hudson"),
    "northshore": Region(
        "the Quebec North Shore",
        "along the Quebec North Shore",
        NP("Côte-Nord du Québec", "f"),
        "le long de la Côte-Nord du Québec",
    ),
}
ENV_REGIONS = ("gsl", "sgsl", "ngsl", "estuary", "ss", "labshelf", "banks", "magdalen", "pei", "hudson", "northshore")

# NAFO management units: code, English label, French noun phrase (the French "de l'OPANO" is part of the phrase).
DIVISIONS = {
    "4T": ("NAFO Division 4T", NP("division 4T de l'OPANO", "f")),
    "4T-4Vn": ("NAFO Divisions 4T-4Vn", NP("divisions 4T-4Vn de l'OPANO", "f", plural=True)),
    "2J3KL": ("NAFO Divisions 2J3KL", NP("divisions 2J3KL de l'OPANO", "f", plural=True)),
    "2J3K": ("NAFO Divisions 2J3K", NP("divisions 2J3K de l'OPANO", "f", plural=True)),
    "3Ps": ("NAFO Subdivision 3Ps", NP("sous-division 3Ps de l'OPANO", "f")),
    "3Pn4RS": ("NAFO Divisions 3Pn4RS", NP("divisions 3Pn4RS de l'OPANO", "f", plural=True)),
    "4RST": ("NAFO Divisions 4RST", NP("divisions 4RST de l'OPANO", "f", plural=True)),
    "3LNO": ("NAFO Divisions 3LNO", NP("divisions 3LNO de l'OPANO", "f", plural=True)),
    "3O": ("NAFO Division 3O", NP("division 3O de l'OPANO", "f")),
    "3LNOPs": ("NAFO Divisions 3LNOPs", NP("divisions 3LNOPs de l'OPANO", "f", plural=True)),
    "4X5Y": ("NAFO Divisions 4X5Y", NP("divisions 4X5Y de l'OPANO", "f", plural=True)),
    "4X": ("NAFO Division 4X", NP("division 4X de l'OPANO", "f")),
    "4VWX": ("NAFO Divisions 4VWX", NP("divisions 4VWX de l'OPANO", "f", plural=True)),
    "3NOPs4VWX5Zc": ("NAFO Divisions 3NOPs4VWX5Zc", NP("divisions 3NOPs4VWX5Zc de l'OPANO", "f", plural=True)),
    "SA34": ("NAFO Subareas 3 and 4", NP("sous-zones 3 et 4 de l'OPANO", "f", plural=True)),
}

# The stocks publications are about: (species, region, NAFO unit).
STOCKS = [
    ("cod", "sgsl", "4T-4Vn"),
    ("cod", "nl", "2J3KL"),
    ("cod", "southcoast", "3Ps"),
    ("cod", "ngsl", "3Pn4RS"),
    ("cod", "wss", "4X5Y"),
    ("plaice", "sgsl", "4T"),
    ("plaice", "banks", "3LNO"),
    ("herring", "sgsl", "4T"),
    ("herring", "ss", "4VWX"),
    ("mackerel", "atl", "SA34"),
    ("turbot", "gsl", "4RST"),
    ("halibut", "ssgb", "3NOPs4VWX5Zc"),
    ("shrimp", "nl", "2J3K"),
    ("shrimp", "ngsl", "4RST"),
    ("crab", "sgsl", "4T"),
    ("crab", "nl", "2J3KL"),
    ("lobster", "fundy", "4X"),
    ("lobster", "sgsl", "4T"),
    ("capelin", "nl", "2J3KL"),
    ("whitehake", "sgsl", "4T"),
    ("yellowtail", "banks", "3LNO"),
    ("witch", "ngsl", "4RST"),
    ("haddock", "wss", "4X5Y"),
    ("pollock", "ss", "4VWX"),
    ("winterfl", "sgsl", "4T"),
    ("scallop", "fundy", "4X"),
    ("acadianred", "banks", "3O"),
    ("deepred", "gsl", "4RST"),
    ("wolffish", "banks", "3LNO"),
    ("skate", "banks", "3LNOPs"),
    ("dogfish", "ss", "4VWX"),
    ("silverhake", "ss", "4VWX"),
]

SURVEYS = [
    (
        "the September multispecies bottom trawl survey",
        NP("relevé plurispécifique au chalut de fond de septembre", "m"),
    ),
    ("the DFO summer research vessel survey", NP("relevé estival par navire scientifique du MPO", "m")),
    ("the fall multispecies survey", NP("relevé plurispécifique d'automne", "m")),
    ("the August bottom trawl survey", NP("relevé au chalut de fond d'août", "m")),
    ("the sentinel fishery survey", NP("relevé de pêche sentinelle", "m")),
    ("the post-season trap survey", NP("relevé post-saison au casier", "m")),
    ("the spring acoustic survey", NP("relevé acoustique du printemps", "m")),
    ("the egg and larval survey", NP("relevé des œufs et des larves", "m")),
    ("the industry-DFO collaborative survey", NP("relevé mené en collaboration par l'industrie et le MPO", "m")),
]

MEASURES = [
    ("a reduction of the TAC", "une réduction du TAC"),
    ("seasonal closures of spawning areas", "des fermetures saisonnières des frayères"),
    ("an increase in the minimum legal size", "une augmentation de la taille minimale légale"),
    ("a limit on the number of traps per licence", "une limite du nombre de casiers par permis"),
    ("mandatory at-sea observer coverage", "une couverture obligatoire par des observateurs en mer"),
    ("a moratorium on directed fishing", "un moratoire sur la pêche dirigée"),
    ("stricter bycatch limits", "des limites plus strictes de prises accessoires"),
    ("the use of sorting grates", "l'utilisation de grilles de tri"),
    ("dockside monitoring of all landings", "la vérification à quai de tous les débarquements"),
    ("the protection of juvenile habitat", "la protection de l'habitat des juvéniles"),
    ("a fishing closure during the moulting period", "une fermeture de la pêche pendant la période de mue"),
]

FISHERIES = [
    ("gillnet", "pêche au filet maillant"),
    ("longline", "pêche à la palangre"),
    ("mobile gear", "pêche aux engins mobiles"),
    ("trap", "pêche au casier"),
    ("bottom trawl", "pêche au chalut de fond"),
    ("recreational", "pêche récréative"),
    ("Indigenous food, social and ceremonial", "pêche autochtone à des fins alimentaires, sociales et rituelles"),
]

# Stock status indicators: English with article, French noun phrase.
INDICATORS = [
    ("the spawning stock biomass", NP("biomasse du stock reproducteur", "f")),
    ("recruitment", NP("recrutement", "m")),
    ("the survey abundance index", NP("indice d'abondance du relevé", "m", elide=True)),
    ("fishing mortality", NP("mortalité par pêche", "f")),
    ("natural mortality", NP("mortalité naturelle", "f")),
    ("the mean weight at age", NP("poids moyen selon l'âge", "m")),
    ("the commercial catch rate", NP("taux de capture commercial", "m")),
    ("the condition of adult fish", NP("condition des poissons adultes", "f")),
    ("the proportion of mature females", NP("proportion de femelles matures", "f")),
    ("the exploitation rate", NP("taux d'exploitation", "m")),
    ("the abundance of pre-recruits", NP("abondance des prérecrues", "f", elide=True)),
]

# Adjectives: English, French masculine singular, French feminine singular.
STATES = [
    ("low", "faible", "faible"),
    ("very low", "très faible", "très faible"),
    ("high", "élevé", "élevée"),
    ("stable", "stable", "stable"),
    ("uncertain", "incertain", "incertaine"),
    ("below the long-term average", "inférieur à la moyenne à long terme", "inférieure à la moyenne à long terme"),
    ("above the long-term average", "supérieur à la moyenne à long terme", "supérieure à la moyenne à long terme"),
    (
        "near the lowest level in the time series",
        "près du niveau le plus bas de la série chronologique",
        "près du niveau le plus bas de la série chronologique",
    ),
]

# Trends: English simple past, English present perfect, French auxiliary ("avoir"/"être"), French participle
# phrase with {e} (agreement) and {s} (plural) where the auxiliary is "être".
TRENDS = [
    ("increased", "has increased", "avoir", "augmenté"),
    ("declined", "has declined", "avoir", "diminué"),
    ("decreased sharply", "has decreased sharply", "avoir", "fortement diminué"),
    ("increased steadily", "has increased steadily", "avoir", "augmenté de façon constante"),
    (
        "fluctuated without a clear trend",
        "has fluctuated without a clear trend",
        "avoir",
        "fluctué sans tendance nette",
    ),
    ("remained relatively stable", "has remained relatively stable", "être", "demeuré{e}{s} relativement stable{s}"),
]


def trend_fr(trend, np: NP | None = None, gender: str = "m", plural: bool = False) -> str:
    """French passé composé of a trend, agreeing with the subject."""
    _, _, aux, participle = trend
    if np is not None:
        gender, plural = np.gender, np.plural
    if aux == "avoir":
        return ("ont " if plural else "a ") + participle
    return ("sont " if plural else "est ") + participle.format(
        e="e" if gender == "f" else "", s="s" if plural else ""
    )


ZONES = [("Critical Zone", "zone critique"), ("Cautious Zone", "zone de prudence"), ("Healthy Zone", "zone saine")]

MONTHS = [
    ("January", "janvier"),
    ("February", "février"),
    ("March", "mars"),
    ("April", "avril"),
    ("May", "mai"),
    ("June", "juin"),
    ("July", "juillet"),
    ("August", "août"),
    ("September", "septembre"),
    ("October", "octobre"),
    ("November", "novembre"),
    ("December", "décembre"),
]

NUMBER_WORDS = [("two", "deux"), ("three", "trois"), ("four", "quatre"), ("five", "cinq")]
ORDINALS = [("second", "deuxième"), ("third", "troisième"), ("fourth", "quatrième"), ("fifth", "cinquième"),
            ("sixth", "sixième")]

VESSELS = ["Teleost", "Alfred Needler", "Jacques Cartier", "John Cabot", "Sir John Franklin", "Leim"]

# Authors cited in both languages ("and" -> "et"; "et al." is the same).
AUTHORS = [
    ("Benoît and Swain", "Benoît et Swain"),
    ("Müller et al.", "Müller et al."),
    ("Louÿs and Côté", "Louÿs et Côté"),
    ("Fréchet et al.", "Fréchet et al."),
    ("Lévesque and Émond", "Lévesque et Émond"),
    ("Hammill et al.", "Hammill et al."),
    ("Bourdages et al.", "Bourdages et al."),
    ("Plourde and Ouellet", "Plourde et Ouellet"),
    ("Desgagnés et al.", "Desgagnés et al."),
    ("Chouinard and Gagné", "Chouinard et Gagné"),
    ("Quinn and Zwanenburg", "Quinn et Zwanenburg"),
]

MPAS = [
    ("Gully", "du Gully"),
    ("Banc-des-Américains", "du Banc-des-Américains"),
    ("St. Anns Bank", "du banc de St. Anns"),
    ("Basin Head", "de Basin Head"),
    ("Eastport", "d'Eastport"),
    ("Laurentian Channel", "du chenal Laurentien"),
]

BAYS = [
    ("Malpeque Bay", "la baie de Malpeque"),
    ("Caraquet Bay", "la baie de Caraquet"),
    ("Tracadie Bay", "la baie de Tracadie"),
    ("the Bras d'Or Lakes", "les lacs Bras d'Or"),
    ("Bedeque Bay", "la baie de Bedeque"),
]

POPULATIONS = [
    ("Laurentian South", "du sud laurentien"),
    ("Laurentian North", "du nord laurentien"),
    ("Southern Gulf of St. Lawrence", "du sud du golfe du Saint-Laurent"),
    ("Newfoundland and Labrador", "de Terre-Neuve-et-Labrador"),
]
COSEWIC_STATUS = [("Endangered", "en voie de disparition"), ("Threatened", "menacée"),
                  ("Special Concern", "préoccupante")]


# --------------------------------------------------------------------------------------------------------------------
# Numbers in each language's format.
# --------------------------------------------------------------------------------------------------------------------


def int_en(n: int) -> str:
    return f"{n:,}"


def int_fr(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def dec_en(x: float, places: int = 1) -> str:
    return f"{x:.{places}f}"


def dec_fr(x: float, places: int = 1) -> str:
    return f"{x:.{places}f}".replace(".", ",")


def date_en(day: int, month: int, year: int | None = None) -> str:
    s = f"{MONTHS[month][0]} {day}"
    return s if year is None else f"{s}, {year}"


def date_fr(day: int, month: int, year: int | None = None) -> str:
    s = f"{'1er' if day == 1 else day} {MONTHS[month][1]}"
    return s if year is None else f"{s} {year}"


# --------------------------------------------------------------------------------------------------------------------
# Templates: (English, French). English is formatted with the E slot dict, French with the F slot dict.
# --------------------------------------------------------------------------------------------------------------------

TEMPLATES: list[tuple[str, str]] = [
    # Captions and short statements.
    ("Figure {fig}. Survey biomass index for {sp} in {div}.",
     "Figure {fig}. Indice de biomasse du relevé pour {le_sp} {dans_div}."),
    ("Table {tab}. Landings (t) of {sp} by fleet, {y1}–{y2}.",
     "Tableau {tab}. Débarquements (t) {du_sp} par flottille, de {y1} à {y2}."),
    ("Eggs and larvae of {sp} collected during {survey}, {month} {year}.",
     "Œufs et larves {de_sp} récoltés pendant {le_survey}, {month} {year}."),
    ("{Sp} landings totalled {t} in {year}.",
     "Les débarquements {du_sp} ont totalisé {t} en {year}."),
    ("The stock is in the {zone}.",
     "Le stock se trouve dans la {zone}."),
    ("No survey was conducted in {year}.",
     "Aucun relevé n'a été effectué en {year}."),
    ("Landings decreased by {pct} in {year}.",
     "Les débarquements ont diminué de {pct} en {year}."),
    ("Implementation of the recovery measures began in {year}.",
     "La mise en œuvre des mesures de rétablissement a commencé en {year}."),
    ("Stock status: {ind} is {state}.",
     "État du stock : {le_ind} est {state}."),
    ("In {year}, {ind} was {state}.",
     "En {year}, {le_ind} était {state}."),
    # Indicators and trends.
    ("{Ind} {trend} between {y1} and {y2}.",
     "{Le_ind} {trend} entre {y1} et {y2}."),
    ("{Ind} has been {state} since {year0}.",
     "{Le_ind} demeure {state} depuis {year0}."),
    ("The spawning stock biomass (SSB) was estimated at {t} at the beginning of {year}, which is {pct} below the "
     "Limit Reference Point (LRP).",
     "La biomasse du stock reproducteur (BSR) a été estimée à {t} au début de {year}, soit {pct} de moins que le "
     "point de référence limite (PRL)."),
    ("Uncertainty in the estimate of {ind} remains high because few fishing sets were completed in {year}.",
     "L'incertitude entourant l'estimation {du_ind} demeure élevée, car peu de traits de pêche ont été effectués en "
     "{year}."),
    ("Participants agreed that {ind} was the most reliable indicator of stock status.",
     "Les participants ont convenu que {le_ind} était l'indicateur le plus fiable de l'état du stock."),
    ("Since the previous assessment in {year0}, {ind} {trend_pp}, while catches in the {fishery} fishery have "
     "remained below {t}, which suggests that fishing is not the main driver.",
     "Depuis l'évaluation précédente en {year0}, {le_ind} {trend}, alors que les captures de la {fishery} sont "
     "demeurées inférieures à {t}, ce qui donne à penser que la pêche n'en est pas le principal facteur."),
    ("Even though {ind} {trend_pp} since {year0}, participants noted that survey coverage was incomplete in {year}, "
     "that the fishery was closed for part of the season and that the model does not account for changes in natural "
     "mortality.",
     "Même si {le_ind} {trend} depuis {year0}, les participants ont souligné que la couverture du relevé était "
     "incomplète en {year}, que la pêche a été fermée pendant une partie de la saison et que le modèle ne tient pas "
     "compte des changements de la mortalité naturelle."),
    ("Recruitment has been below average since {year0}, probably because of the poor survival of young fish.",
     "Le recrutement est inférieur à la moyenne depuis {year0}, probablement en raison de la faible survie des "
     "jeunes poissons."),
    ("Commercial catch rates in the {fishery} fishery {trend_pl_en} from {y1} to {y2}.",
     "Les taux de capture commerciaux dans la {fishery} {trend_pl} de {y1} à {y2}."),
    # Surveys and sampling.
    ("{Sp} was caught in {pct} of the tows of {survey} in {year}.",
     "{Le_sp} a été capturé{e_sp} dans {pct} des traits {du_survey} en {year}."),
    ("The survey was conducted from {date1} to {date2}, {year} aboard the CCGS {vessel}.",
     "Le relevé a été effectué du {date1} au {date2} {year} à bord du NGCC {vessel}."),
    ("The stations with the highest densities of {sp} were located {region_in}.",
     "Les stations où les densités {du_sp} étaient les plus élevées se trouvaient {region_in}."),
    ("Stomach and pyloric caeca contents were examined for {n} specimens of {sp}.",
     "Le contenu de l'estomac et des cæcums pyloriques a été examiné pour {n} spécimens {de_sp}."),
    ("Ages were determined from otoliths for {n} fish sampled from commercial landings in {year}.",
     "L'âge a été déterminé à partir des otolithes de {n} poissons échantillonnés dans les débarquements commerciaux "
     "en {year}."),
    ("The mean length of {sp} in the catch was {len} cm, and {pct} of the fish were smaller than the minimum legal "
     "size of {mls} cm.",
     "La longueur moyenne {du_sp} dans les captures était de {len} cm, et {pct} des poissons étaient plus petits que "
     "la taille minimale légale de {mls} cm."),
    ("Males accounted for {pct} of the commercial-size catch, compared with {pct2} in {year0}.",
     "Les mâles représentaient {pct} des captures de taille commerciale, comparativement à {pct2} en {year0}."),
    ("Fishers reported that {sp} was more abundant near shore than in previous years.",
     "Les pêcheurs ont signalé que {le_sp} était plus abondant{e_sp} près de la côte que les années précédentes."),
    ("In the future, the survey should be extended to the {depth} m depth stratum.",
     "À l'avenir, le relevé devrait être étendu à la strate de profondeur de {depth} m."),
    ("The discrepancy between the survey index and the commercial catch rates was discussed but not resolved.",
     "L'écart entre l'indice du relevé et les taux de capture commerciaux a été discuté, mais n'a pas été résolu."),
    ("These results are consistent with those reported by {author} ({year0}).",
     "Ces résultats concordent avec ceux qui ont été rapportés par {author} ({year0})."),
    # Fishery and management.
    ("Managers could consider {measure} to reduce the risk of serious harm to the stock.",
     "Les gestionnaires pourraient envisager {measure} afin de réduire le risque de dommages graves au stock."),
    ("The TAC for {year} was set at {t}, and {pct} of it was landed.",
     "Le TAC pour {year} a été fixé à {t}, et {pct} de celui-ci a été débarqué."),
    ("A moratorium on directed fishing for {sp} has been in effect since {year0}.",
     "Un moratoire sur la pêche dirigée {du_sp} est en vigueur depuis {year0}."),
    ("At current catch levels of {t}, the probability that the stock will decline over the next {num} years is "
     "{pct}.",
     "Aux niveaux de captures actuels de {t}, la probabilité que le stock diminue au cours des {num} prochaines "
     "années est de {pct}."),
    ("Projections indicate that a catch of {t} would have a {pct} probability of keeping the stock above the LRP in "
     "{year1}.",
     "Les projections indiquent que des captures de {t} auraient une probabilité de {pct} de maintenir le stock "
     "au-dessus du PRL en {year1}."),
    ("The fishery opened on {date1} and closed on {date2} once the quota was reached.",
     "La pêche s'est ouverte le {date1} et s'est terminée le {date2}, une fois le quota atteint."),
    ("Bycatch of {sp2} in the {sp} fishery was estimated at {t_small} in {year}.",
     "Les prises accessoires {de_sp2} dans la pêche {du_sp} ont été estimées à {t_small} en {year}."),
    ("Under the harvest control rule, the removal rate decreases linearly from {rate} when the stock is above the USR "
     "to zero when it reaches the LRP.",
     "En vertu de la règle de contrôle des prises, le taux de prélèvement diminue de façon linéaire, passant de "
     "{rate} lorsque le stock se situe au-dessus du PRS à zéro lorsqu'il atteint le PRL."),
    ("The LRP was defined as {lrp} of the biomass at maximum sustainable yield (BMSY).",
     "Le PRL a été défini comme étant {lrp} de la biomasse au rendement maximal soutenu (BRMS)."),
    ("The reference points were developed following the DFO Precautionary Approach framework.",
     "Les points de référence ont été établis conformément au cadre de l'approche de précaution du MPO."),
    ("Areas where juvenile {sp} concentrate should be protected during the spawning period in {month}.",
     "Les zones où se concentrent les juvéniles {de_sp} devraient être protégées pendant la période de frai, en "
     "{month}."),
    ("Grey seal predation is the main source of natural mortality for {sp} older than {age} years.",
     "La prédation par le phoque gris est la principale source de mortalité naturelle pour {le_sp} "
     "âgé{e_sp} de plus de {age} ans."),
    ("Fishing activity within the contiguous zone increased by {pct} between {y1} and {y2}.",
     "L'activité de pêche dans la zone contiguë a augmenté de {pct} entre {y1} et {y2}."),
    ("Acute toxicity tests showed no effect on larvae of {sp} at concentrations below {conc} mg/L.",
     "Les essais de toxicité aiguë n'ont montré aucun effet sur les larves {de_sp} à des concentrations inférieures "
     "à {conc} mg/L."),
    # Species at risk and habitat.
    ("In {year}, COSEWIC designated the {pop} population of {sp} as \"{status}\".",
     "En {year}, le COSEPAC a désigné la population {pop} {du_sp} comme « {status} »."),
    ("The species is listed under Schedule 1 of the Species at Risk Act (SARA).",
     "L'espèce est inscrite à l'annexe 1 de la Loi sur les espèces en péril (LEP)."),
    ("The area contains a mosaic of habitats, including eelgrass beds, rocky reefs and muddy bottoms, that support "
     "juvenile {sp}.",
     "La zone comprend une mosaïque d'habitats, notamment des herbiers de zostère, des récifs rocheux et des fonds "
     "vaseux, qui soutiennent les juvéniles {de_sp}."),
    ("The {mpa} Marine Protected Area covers {area} square kilometres and protects important habitat for {sp}.",
     "La zone de protection marine {mpa} couvre {area} kilomètres carrés et protège un habitat important pour "
     "{le_sp}."),
    ("Oyster farms in Prince Edward Island produced {t} in {year}.",
     "Les sites d'élevage d'huîtres de l'Île-du-Prince-Édouard ont produit {t} en {year}."),
    ("Mortality of American oysters in {bay} reached {pct} after the heat wave of {month} {year}.",
     "La mortalité des huîtres américaines dans {bay} a atteint {pct} après la vague de chaleur {de_month} {year}."),
    # Ocean conditions.
    ("The mean bottom temperature {region_in} was {temp} in {year}, the highest value since {year0}.",
     "La température moyenne au fond {region_in} était de {temp} en {year}, la valeur la plus élevée depuis "
     "{year0}."),
    ("Sea surface temperatures {region_in} were {dtemp} above normal in {month} {year}.",
     "Les températures de surface de la mer {region_in} étaient supérieures de {dtemp} à la normale en {month} "
     "{year}."),
    ("Dissolved oxygen saturation in the deep waters of the St. Lawrence Estuary fell below {o2} in {year}, a level "
     "considered hypoxic.",
     "La saturation en oxygène dissous dans les eaux profondes de l'estuaire du Saint-Laurent est passée sous {o2} "
     "en {year}, un niveau considéré comme hypoxique."),
    ("The volume of the cold intermediate layer in {year} was the {ordinal} lowest in the {span}-year time series.",
     "Le volume de la couche intermédiaire froide en {year} était le {ordinal} plus faible de la série chronologique "
     "de {span} ans."),
    ("Abundance of the copepod Calanus finmarchicus was below normal {region_in} for the {ordinal} consecutive year.",
     "L'abondance du copépode Calanus finmarchicus était inférieure à la normale {region_in} pour une {ordinal} "
     "année consécutive."),
    ("Sea-ice volume {region_in} reached a maximum of {vol} cubic kilometres in {year}, one of the lowest values on "
     "record.",
     "Le volume de glace de mer {region_in} a atteint un maximum de {vol} kilomètres cubes en {year}, l'une des plus "
     "faibles valeurs jamais enregistrées."),
    ("Warmer bottom waters, a shrinking cold intermediate layer and lower oxygen levels are expected to reduce "
     "suitable habitat for {sp}, which could affect the productivity of the stock and the effectiveness of current "
     "management measures.",
     "Le réchauffement des eaux de fond, l'amincissement de la couche intermédiaire froide et la baisse des niveaux "
     "d'oxygène devraient réduire l'habitat propice {au_sp}, ce qui pourrait nuire à la productivité du stock et à "
     "l'efficacité des mesures de gestion actuelles."),
    # CSAS boilerplate.
    ("This Science Advisory Report is from the {date} regional peer review meeting on the assessment of {sp} in "
     "{div}.",
     "Le présent avis scientifique découle de la réunion régionale d'examen par les pairs du {date} sur "
     "l'évaluation {du_sp} {dans_div}."),
    ("Additional publications from this meeting will be posted on the Fisheries and Oceans Canada (DFO) Science "
     "Advisory Schedule as they become available.",
     "Toute autre publication découlant de cette réunion sera publiée dans le calendrier des avis scientifiques de "
     "Pêches et Océans Canada (MPO) à mesure qu'elle sera disponible."),
    ("Correct citation for this publication: DFO. {pubyear}. Assessment of {sp} in {div}. DFO Can. Sci. Advis. Sec. "
     "Sci. Advis. Rep. {pub}.",
     "La présente publication doit être citée comme suit : MPO. {pubyear}. Évaluation {du_sp} {dans_div}. Secr. can. "
     "des avis sci. du MPO. Avis sci. {pub}."),
    ("It is recommended that the survey time series be maintained to monitor the recovery of the stock.",
     "Il est recommandé de maintenir la série chronologique du relevé afin de suivre le rétablissement du stock."),
    # Science Response questions and scientific notation (punctuation and symbol coverage). Canadian French puts no
    # space before "?" and ";" but one before ":" and "%".
    ("Is the stock likely to grow above the LRP by {year1}?",
     "Est-il probable que le stock dépasse le PRL d'ici {year1}?"),
    ("What are the impacts of the proposed closure on {sp}?",
     "Quelles sont les répercussions de la fermeture proposée sur {le_sp}?"),
    ("Catches were low in {y1}; they increased sharply after {year0}.",
     "Les captures étaient faibles en {y1}; elles ont fortement augmenté après {year0}."),
    ("Mean condition was {cond} ± {cond_sd} (n = {n}) in {year}.",
     "La condition moyenne était de {cond} ± {cond_sd} (n = {n}) en {year}."),
    ("Fish aged {age}+ accounted for {pct} of the catch in {year}.",
     "Les poissons de {age} ans et plus représentaient {pct} des captures en {year}."),
    ("Sets with catches > {kg} kg were excluded (< {small_pct} of all sets).",
     "Les traits dont les captures étaient > {kg} kg ont été exclus (< {small_pct} de l'ensemble des traits)."),
    ("Values marked with an asterisk (*) are preliminary [see Table {tab}].",
     "Les valeurs marquées d'un astérisque (*) sont préliminaires [voir le tableau {tab}]."),
    ("Where data were lacking, the costs and benefits of each option were assessed qualitatively.",
     "Là où les données manquaient, les coûts et les avantages de chaque option ont été évalués de façon "
     "qualitative."),
]


# --------------------------------------------------------------------------------------------------------------------
# Pretraining templates: general sentences about the same fish, places, numbers, dates and indicators, in other words
# and sentence frames. They make `pretrain_pairs.jsonl`, the text the tiny offline base models are pretrained on
# (scripts/pretrain_tiny.py), so that the bases know both languages' shared vocabulary but not the CSAS phrasing of
# TEMPLATES, which fine-tuning on `sample_pairs.jsonl` then teaches. No template is in both lists.
# --------------------------------------------------------------------------------------------------------------------

PRETRAIN_TEMPLATES: list[tuple[str, str]] = [
    # Species and where they live.
    ("{Sp} lives {region_in}.",
     "{Le_sp} vit {region_in}."),
    ("{Sp} is found at depths of up to {depth} m.",
     "On trouve {le_sp} à des profondeurs allant jusqu'à {depth} m."),
    ("{Sp} and {sp2} are often caught together.",
     "{Le_sp} et {le_sp2} sont souvent capturé{e_pair}s ensemble."),
    ("The main predators of {sp} are seals and seabirds.",
     "Les principaux prédateurs {du_sp} sont les phoques et les oiseaux marins."),
    ("{Sp} feeds mainly on small fish and shrimp.",
     "{Le_sp} se nourrit surtout de petits poissons et de crevettes."),
    ("{Sp} spawns in {month}.",
     "{Le_sp} fraie en {month}."),
    ("There is a separate stock of {sp} {region_in}.",
     "Il existe un stock distinct {de_sp} {region_in}."),
    ("The map shows where {sp} was caught in {year}.",
     "La carte montre où {le_sp} a été capturé{e_sp} en {year}."),
    ("{Sp} is managed by Fisheries and Oceans Canada.",
     "{Le_sp} est géré{e_sp} par Pêches et Océans Canada."),
    ("{Sp} grows slowly in cold water.",
     "{Le_sp} croît lentement en eau froide."),
    ("Juvenile {sp} stay close to the coast.",
     "Les juvéniles {de_sp} restent près de la côte."),
    ("Seals eat large amounts of {sp}.",
     "Les phoques mangent de grandes quantités {de_sp}."),
    ("{Region} is an important fishing area.",
     "{Le_region} est une zone de pêche importante."),
    ("{Sp} is one of the species studied {region_in}.",
     "{Le_sp} est l'une des espèces étudiées {region_in}."),
    ("Copepods are an important food for {sp}.",
     "Les copépodes sont une nourriture importante pour {le_sp}."),
    # Numbers and measurements.
    ("The catch was {t} in {year}.",
     "Les captures étaient de {t} en {year}."),
    ("About {pct} of the fish were females.",
     "Environ {pct} des poissons étaient des femelles."),
    ("The average length was {len} cm.",
     "La longueur moyenne était de {len} cm."),
    ("The fish weighed {kg} kg in total.",
     "Les poissons pesaient {kg} kg au total."),
    ("The area measures {area} square kilometres.",
     "La zone mesure {area} kilomètres carrés."),
    ("The sample included {n} fish from {num} areas.",
     "L'échantillon comprenait {n} poissons provenant de {num} zones."),
    ("The water was {dtemp} warmer than last year.",
     "L'eau était plus chaude de {dtemp} que l'année dernière."),
    ("The temperature was {temp} at a depth of {depth} m.",
     "La température était de {temp} à une profondeur de {depth} m."),
    ("The average value was {cond} in {year}.",
     "La valeur moyenne était de {cond} en {year}."),
    ("The concentration in the water was {conc} mg/L.",
     "La concentration dans l'eau était de {conc} mg/L."),
    ("Oxygen saturation was {o2} at {depth} m.",
     "La saturation en oxygène était de {o2} à {depth} m."),
    ("The ice volume was {vol} cubic kilometres in {month}.",
     "Le volume de glace était de {vol} kilomètres cubes en {month}."),
    ("The minimum size is {mls} cm.",
     "La taille minimale est de {mls} cm."),
    ("Fish older than {age} years are rare.",
     "Les poissons de plus de {age} ans sont rares."),
    ("Only {pct} of the sets caught {sp}.",
     "Seuls {pct} des traits ont capturé {le_sp}."),
    ("{Sp} made up {pct} of the total weight.",
     "{Le_sp} représentait {pct} du poids total."),
    ("The value rose from {pct2} to {pct}.",
     "La valeur est passée de {pct2} à {pct}."),
    # Time and dates.
    ("The meeting was held on {date}.",
     "La réunion a eu lieu le {date}."),
    ("The ship left port on {date1}.",
     "Le navire a quitté le port le {date1}."),
    ("Work at sea ended in {month} {year}.",
     "Les travaux en mer ont pris fin en {month} {year}."),
    ("Data from {y1} to {y2} were used.",
     "Les données de {y1} à {y2} ont été utilisées."),
    ("The next report is planned for {year1}.",
     "Le prochain rapport est prévu pour {year1}."),
    ("The {ordinal} meeting took place in {month} {year}.",
     "La {ordinal} réunion a eu lieu en {month} {year}."),
    ("The fishing season lasts {num} months.",
     "La saison de pêche dure {num} mois."),
    ("Sampling began in {year0} and ended in {year}.",
     "L'échantillonnage a commencé en {year0} et a pris fin en {year}."),
    ("The {ordinal} year of sampling was {year}.",
     "La {ordinal} année d'échantillonnage était {year}."),
    # Fishing and management.
    ("Fishers catch {sp} in the {fishery} fishery.",
     "Les pêcheurs capturent {le_sp} dans la {fishery}."),
    ("The quota for {sp} was {t} in {year}.",
     "Le quota {de_sp} était de {t} en {year}."),
    ("Fishing for {sp} is not allowed in the {mpa} area.",
     "La pêche {du_sp} est interdite dans la zone {mpa}."),
    ("The new rules include {measure}.",
     "Les nouvelles règles comprennent {measure}."),
    ("Fishers asked for {measure}.",
     "Les pêcheurs ont demandé {measure}."),
    ("Catches of {sp} {trend_pl_en} over the years.",
     "Les captures {de_sp} {trend_fpl} au fil des ans."),
    ("The {fishery} fishery landed {t} of {sp} in {year}.",
     "La {fishery} a débarqué {t} {de_sp} en {year}."),
    ("The {zone} is defined by reference points.",
     "La {zone} est définie par des points de référence."),
    ("A stock in the {zone} needs careful management.",
     "Un stock dans la {zone} doit être géré avec prudence."),
    ("Most of the catch is sold fresh.",
     "La plupart des captures sont vendues fraîches."),
    ("Oysters are grown in {bay}.",
     "On élève des huîtres dans {bay}."),
    ("The {mpa} area is closed to fishing.",
     "La zone {mpa} est fermée à la pêche."),
    # Surveys and science.
    ("{Survey} takes place every year.",
     "{Le_survey} a lieu chaque année."),
    ("The results of {survey} are used every year.",
     "Les résultats {du_survey} sont utilisés chaque année."),
    ("The samples were sent to the laboratory in {month}.",
     "Les échantillons ont été envoyés au laboratoire en {month}."),
    ("The results are shown in Figure {fig}.",
     "Les résultats sont présentés à la figure {fig}."),
    ("Table {tab} gives the values for each year.",
     "Le tableau {tab} donne les valeurs pour chaque année."),
    ("The model was fitted to data from {y1} to {y2}.",
     "Le modèle a été ajusté aux données de {y1} à {y2}."),
    ("The research vessel {vessel} sampled {n} stations.",
     "Le navire de recherche {vessel} a échantillonné {n} stations."),
    ("{author} studied {sp} {region_in}.",
     "{author} ont étudié {le_sp} {region_in}."),
    ("According to {author}, {ind} was {state} in {year0}.",
     "Selon {author}, {le_ind} était {state} en {year0}."),
    ("The survey covered {num} regions in {year}.",
     "Le relevé a couvert {num} régions en {year}."),
    ("We thank the crew of the CCGS {vessel}.",
     "Nous remercions l'équipage du NGCC {vessel}."),
    ("Results for {sp2} are given in Table {tab}.",
     "Les résultats pour {le_sp2} sont présentés dans le tableau {tab}."),
    ("Scientists from {num} countries attended the meeting.",
     "Des scientifiques de {num} pays ont assisté à la réunion."),
    ("The {pub} report is available online.",
     "Le rapport {pub} est disponible en ligne."),
    # Indicators.
    ("{Ind} was {state} in {div}.",
     "{Le_ind} était {state} {dans_div}."),
    ("{Ind} {trend} after {year0}.",
     "{Le_ind} {trend} après {year0}."),
    ("Scientists measure {ind} each year.",
     "Les scientifiques mesurent {le_ind} chaque année."),
    ("{Ind} is used to describe the state of the stock.",
     "{Le_ind} sert à décrire l'état du stock."),
    # Ocean conditions.
    ("Warm water was observed {region_in} in {month}.",
     "Des eaux chaudes ont été observées {region_in} en {month}."),
    ("The ice melted earlier than usual in {year}.",
     "La glace a fondu plus tôt que d'habitude en {year}."),
    ("Oxygen levels were low in the deep water {region_in}.",
     "Les niveaux d'oxygène étaient faibles dans les eaux profondes {region_in}."),
    # Everyday words of reports (function words, verbs, connectives), in sentences of their own.
    ("Scientists have studied {sp} since {year0}.",
     "Les scientifiques étudient {le_sp} depuis {year0}."),
    ("The survey was conducted with a new net in {year}.",
     "Le relevé a été effectué avec un nouveau filet en {year}."),
    ("The vessel that sampled the stations was the CCGS {vessel}.",
     "Le navire qui a échantillonné les stations était le NGCC {vessel}."),
    ("It is likely that {ind} will decline in {year1}.",
     "Il est probable que {le_ind} diminue en {year1}."),
    ("The probability of a decline is {pct}.",
     "La probabilité d'une baisse est de {pct}."),
    ("These fish were smaller than those caught in {year0}.",
     "Ces poissons étaient plus petits que ceux capturés en {year0}."),
    ("The eggs were collected in {month} and examined in the laboratory.",
     "Les œufs ont été récoltés en {month} et examinés au laboratoire."),
    ("Managers should consider the risk to the population.",
     "Les gestionnaires devraient tenir compte du risque pour la population."),
    ("The recovery of {sp} could take many years.",
     "Le rétablissement {du_sp} pourrait prendre de nombreuses années."),
    ("Catches were lower because the fishery opened late.",
     "Les captures étaient plus faibles, car la pêche s'est ouverte tard."),
    ("The boats returned to port once the weather became poor.",
     "Les bateaux sont rentrés au port une fois que le temps est devenu mauvais."),
    ("No specimens of {sp} were found in the area.",
     "Aucun spécimen {de_sp} n'a été trouvé dans la zone."),
    ("The current approach was developed with the fishing industry.",
     "L'approche actuelle a été élaborée avec l'industrie de la pêche."),
    ("This publication is part of a regional series.",
     "Cette publication fait partie d'une série régionale."),
    ("The review found few errors in the data.",
     "L'examen a relevé peu d'erreurs dans les données."),
    ("The estimate for {year} remains uncertain.",
     "L'estimation pour {year} demeure incertaine."),
    ("Surface temperatures reached a record in {month} {year}.",
     "Les températures de surface ont atteint un record en {month} {year}."),
    ("Males were more abundant than females in {year}.",
     "Les mâles étaient plus abondants que les femelles en {year}."),
    ("Ages were compared between the two fleets.",
     "Les âges ont été comparés entre les deux flottilles."),
    ("Fish with no age were excluded from the analysis.",
     "Les poissons sans âge ont été exclus de l'analyse."),
    ("Each option has costs but also benefits.",
     "Chaque option a des coûts, mais aussi des avantages."),
    ("Scientists recommended that the new method be used.",
     "Les scientifiques ont recommandé d'utiliser la nouvelle méthode."),
    ("The tests showed an effect at high concentrations.",
     "Les essais ont montré un effet à des concentrations élevées."),
    ("Fishing activity was low while the ice was present.",
     "L'activité de pêche était faible alors que la glace était présente."),
    ("The data suggest that the stock will grow.",
     "Les données donnent à penser que le stock va croître."),
    ("The main source of uncertainty is the survey.",
     "La principale source d'incertitude est le relevé."),
    ("What are the effects of warm water on {sp}?",
     "Quels sont les effets des eaux chaudes sur {le_sp}?"),
    ("The density of {sp} was highest in {month}.",
     "La densité {du_sp} était la plus élevée en {month}."),
    ("The status of the stock is assessed every {num} years.",
     "L'état du stock est évalué tous les {num} ans."),
    ("The previous report was published in {year0}.",
     "Le rapport précédent a été publié en {year0}."),
    ("Additional samples will be collected next year.",
     "D'autres échantillons seront récoltés l'an prochain."),
    ("The marine area covers a large part of the coast.",
     "La zone marine couvre une grande partie de la côte."),
    ("These measures protect young fish during spawning.",
     "Ces mesures protègent les jeunes poissons pendant le frai."),
    ("Under the new plan, the season is shorter.",
     "En vertu du nouveau plan, la saison est plus courte."),
    ("The maximum depth of the survey was {depth} m.",
     "La profondeur maximale du relevé était de {depth} m."),
    ("The fleet has {num} boats, which fish mostly in {month}.",
     "La flottille compte {num} bateaux, qui pêchent surtout en {month}."),
    ("Before {year0}, landings were higher than now.",
     "Avant {year0}, les débarquements étaient plus élevés qu'aujourd'hui."),
    ("The catch rate was estimated from logbooks.",
     "Le taux de capture a été estimé à partir des journaux de bord."),
    ("The count was made at the beginning of {month}.",
     "Le dénombrement a été fait au début {de_month}."),
    ("The total weight was lower than expected.",
     "Le poids total était inférieur aux prévisions."),
    ("The stock is below the limit reference point.",
     "Le stock se situe sous le point de référence limite."),
    ("{Sp} is more abundant in warm years.",
     "{Le_sp} est plus abondant{e_sp} pendant les années chaudes."),
    ("The temperature of the deep layer has risen since {year0}.",
     "La température de la couche profonde a augmenté depuis {year0}."),
    ("The population is at risk because of low recruitment.",
     "La population est à risque en raison du faible recrutement."),
    ("The catch was within the limit set for {year}.",
     "Les captures respectaient la limite fixée pour {year}."),
    ("Those results were reported in a previous publication.",
     "Ces résultats ont été rapportés dans une publication précédente."),
    ("Some fish were aged {age} years or more.",
     "Certains poissons étaient âgés de {age} ans ou plus."),
    ("The productivity of the stock is low.",
     "La productivité du stock est faible."),
    ("Implementation of the plan will take {num} years.",
     "La mise en œuvre du plan prendra {num} ans."),
    ("The meeting was a peer review of the model.",
     "La réunion était un examen par les pairs du modèle."),
    ("The stock could decline if catches remain high.",
     "Le stock pourrait diminuer si les captures demeurent élevées."),
    ("Managers want to reduce the risk of a decline.",
     "Les gestionnaires veulent réduire le risque d'une baisse."),
    ("The sea ice was thinner than normal.",
     "La glace de mer était plus mince que la normale."),
    ("Oxygen is lower in deep water than at the surface.",
     "L'oxygène est plus faible en eau profonde qu'en surface."),
    ("The {span}-year series shows no clear trend.",
     "La série de {span} ans ne montre aucune tendance nette."),
    ("The sites produced {t} of mussels in {year}.",
     "Les sites ont produit {t} de moules en {year}."),
    ("The shrimp fishery accounted for most of the bycatch.",
     "La pêche à la crevette représentait la plus grande partie des prises accessoires."),
    ("The effect of fishing is smaller than that of predation.",
     "L'effet de la pêche est plus faible que celui de la prédation."),
    ("Most stations were located near the coast.",
     "La plupart des stations se trouvaient près de la côte."),
    ("Is the stock growing? The data are not clear.",
     "Le stock est-il en croissance? Les données ne sont pas claires."),
    ("The fish were measured on board the ship.",
     "Les poissons ont été mesurés à bord du navire."),
    ("The index has remained near its average since {year0}.",
     "L'indice demeure près de sa moyenne depuis {year0}."),
    ("A management approach based on reference points was developed.",
     "Une approche de gestion fondée sur des points de référence a été élaborée."),
    ("Growth was slower in {year} than in previous years.",
     "La croissance était plus lente en {year} que les années précédentes."),
    ("The sample was too small to estimate mortality.",
     "L'échantillon était trop petit pour estimer la mortalité."),
    ("Each fish was examined for parasites.",
     "Chaque poisson a été examiné pour détecter des parasites."),
    ("The boats whose catches were sampled came from {num} ports.",
     "Les bateaux dont les captures ont été échantillonnées provenaient de {num} ports."),
    ("Fishing stops when the ice arrives.",
     "La pêche s'arrête lorsque la glace arrive."),
    ("The nets were changed in order to reduce bycatch.",
     "Les filets ont été modifiés afin de réduire les prises accessoires."),
    ("{Sp} is used as bait in the {fishery} fishery.",
     "{Le_sp} est utilisé{e_sp} comme appât dans la {fishery}."),
    ("The difference between the two areas was small.",
     "La différence entre les deux zones était faible."),
    ("The stock remained under the limit for {num} years.",
     "Le stock est resté sous la limite pendant {num} ans."),
    ("The water was above {temp} at the surface.",
     "L'eau était au-dessus de {temp} en surface."),
    ("It was the warmest year since {year0}.",
     "C'était l'année la plus chaude depuis {year0}."),
    ("Fishers said that they saw more seals.",
     "Les pêcheurs ont dit qu'ils avaient vu plus de phoques."),
    ("A closure would help the stock.",
     "Une fermeture aiderait le stock."),
    # Terms of stock assessment and ocean science, in sentences of their own.
    ("The LRP and the USR are two reference points.",
     "Le PRL et le PRS sont deux points de référence."),
    ("The stock has been in the {zone} for {num} years.",
     "Le stock se trouve dans la {zone} depuis {num} ans."),
    ("The assessment of {sp} was updated in {year}.",
     "L'évaluation {du_sp} a été mise à jour en {year}."),
    ("Spawning areas are protected in {month}.",
     "Les frayères sont protégées en {month}."),
    ("Growth rates were similar in both areas.",
     "Les taux de croissance étaient semblables dans les deux zones."),
    ("Science advice is given to managers each year.",
     "Des avis scientifiques sont donnés aux gestionnaires chaque année."),
    ("The Canadian Science Advisory Secretariat publishes reports.",
     "Le Secrétariat canadien des avis scientifiques publie des rapports."),
    ("The cold intermediate layer was thin in {year}.",
     "La couche intermédiaire froide était mince en {year}."),
    ("The schedule of meetings is posted online.",
     "Le calendrier des réunions est publié en ligne."),
    ("Larvae drift with the currents for several weeks.",
     "Les larves dérivent avec les courants pendant plusieurs semaines."),
    ("Small fish were found in the stomach of most seals.",
     "De petits poissons ont été trouvés dans l'estomac de la plupart des phoques."),
    ("The contents of each net were sorted on deck.",
     "Le contenu de chaque filet a été trié sur le pont."),
    ("The projections were made for {num} years.",
     "Les projections ont été faites pour {num} ans."),
    ("The results indicate a decline.",
     "Les résultats indiquent une baisse."),
    ("Keeping catches low would help recovery.",
     "Maintenir les captures à un faible niveau aiderait au rétablissement."),
    ("Lower catches would have a small effect.",
     "Des captures plus faibles auraient un faible effet."),
    ("Fish concentrate in deep water in winter.",
     "Les poissons se concentrent en eau profonde en hiver."),
    ("Observers were aboard {pct} of the trips.",
     "Des observateurs étaient à bord de {pct} des sorties."),
    ("Only commercial-size fish are landed.",
     "Seuls les poissons de taille commerciale sont débarqués."),
    ("Commercial fishers reported more small fish.",
     "Les pêcheurs commerciaux ont signalé plus de petits poissons."),
    ("The age of each fish was determined in the laboratory.",
     "L'âge de chaque poisson a été déterminé en laboratoire."),
    ("Otoliths are small bones used to age fish.",
     "Les otolithes sont de petits os qui servent à déterminer l'âge des poissons."),
    ("The number of tows was lower in {year}.",
     "Le nombre de traits était plus faible en {year}."),
    ("Boxes marked in red contain samples.",
     "Les boîtes marquées en rouge contiennent des échantillons."),
    ("An asterisk indicates a missing value.",
     "Un astérisque indique une valeur manquante."),
    ("A heat wave affected the coast in {month} {year}.",
     "Une vague de chaleur a touché la côte en {month} {year}."),
    ("Dissolved oxygen was measured at each station.",
     "L'oxygène dissous a été mesuré à chaque station."),
    ("The catch fell by half after {year0}.",
     "Les captures ont diminué de moitié après {year0}."),
    ("Water with little oxygen is considered hypoxic.",
     "Une eau qui contient peu d'oxygène est considérée comme hypoxique."),
    ("The participants agreed on the agenda of the meeting.",
     "Les participants ont convenu de l'ordre du jour de la réunion."),
    ("This index is not a reliable measure of abundance.",
     "Cet indice n'est pas une mesure fiable de l'abondance."),
    ("Each indicator is shown in a separate figure.",
     "Chaque indicateur est présenté dans une figure distincte."),
    ("A harvest control rule sets the catch each year.",
     "Une règle de contrôle des prises fixe les captures chaque année."),
    ("The removal rate was {rate} in {year}.",
     "Le taux de prélèvement était de {rate} en {year}."),
    ("The fishery closes when it reaches its quota.",
     "La pêche ferme lorsqu'elle atteint son quota."),
    ("The value dropped to zero in {year}.",
     "La valeur est tombée à zéro en {year}."),
    ("Length increases linearly with age.",
     "La longueur augmente de façon linéaire avec l'âge."),
    ("SSB is the weight of all mature fish.",
     "La BSR est le poids de tous les poissons matures."),
    ("In the future, more data will be needed.",
     "À l'avenir, il faudra plus de données."),
    ("The season was extended by {num} weeks.",
     "La saison a été prolongée de {num} semaines."),
    ("The closed area was extended to the south.",
     "La zone fermée a été étendue vers le sud."),
    ("Each depth stratum was sampled twice.",
     "Chaque strate de profondeur a été échantillonnée deux fois."),
    ("The closure protects spawning fish.",
     "La fermeture protège les poissons reproducteurs."),
    ("Overfishing can cause serious harm to a stock.",
     "La surpêche peut causer des dommages graves à un stock."),
    ("COSEWIC assesses the status of wildlife species.",
     "Le COSEPAC évalue la situation des espèces sauvages."),
    ("The area was designated in {year}.",
     "La zone a été désignée en {year}."),
    ("The ice cover is shrinking each decade.",
     "La couverture de glace diminue à chaque décennie."),
    ("Suitable habitat is rare in warm years.",
     "L'habitat propice est rare pendant les années chaudes."),
    ("Warming could affect growth and survival.",
     "Le réchauffement pourrait nuire à la croissance et à la survie."),
    ("The effectiveness of the closure is not known.",
     "L'efficacité de la fermeture n'est pas connue."),
    ("Please use the correct citation for each report.",
     "Veuillez utiliser la citation correcte pour chaque rapport."),
    ("The discrepancy in the data was found in {year}.",
     "L'écart dans les données a été relevé en {year}."),
    ("The question was discussed and resolved quickly.",
     "La question a été discutée et résolue rapidement."),
    ("Exports totalled {t} in {year}.",
     "Les exportations ont totalisé {t} en {year}."),
    ("Densities were low in shallow water.",
     "Les densités étaient faibles en eau peu profonde."),
    ("Maximum sustainable yield is a key concept in fisheries science.",
     "Le rendement maximal soutenu est un concept clé en halieutique."),
    ("BMSY is the biomass that gives the maximum yield.",
     "La BRMS est la biomasse qui donne le rendement maximal."),
    ("The species was listed in {year}.",
     "L'espèce a été inscrite en {year}."),
    ("SARA is a federal act.",
     "La LEP est une loi fédérale."),
    ("Grey seals are common {region_in}.",
     "Les phoques gris sont communs {region_in}."),
    ("The impacts of the project were small.",
     "Les répercussions du projet étaient faibles."),
    ("The proposed plan was presented in {month}.",
     "Le plan proposé a été présenté en {month}."),
    ("The estimated biomass was lower than in {year0}.",
     "La biomasse estimée était plus faible qu'en {year0}."),
    ("The catches were estimated from landings.",
     "Les captures ont été estimées à partir des débarquements."),
    ("It will be difficult to maintain the current level.",
     "Il sera difficile de maintenir le niveau actuel."),
    ("The decline was large, that is {pct} in {num} years.",
     "La baisse a été importante, soit {pct} en {num} ans."),
    ("These fish are smaller and less numerous.",
     "Ces poissons sont plus petits et moins nombreux."),
    ("The plan should be finished by {year1}.",
     "Le plan devrait être terminé d'ici {year1}."),
    ("Managers could change the rules.",
     "Les gestionnaires pourraient modifier les règles."),
    ("Fishers may consider other gear.",
     "Les pêcheurs pourraient envisager d'autres engins."),
    ("The current rules are in effect until {year1}.",
     "Les règles actuelles sont en vigueur jusqu'en {year1}."),
    ("Over the next {num} years, the survey will continue.",
     "Au cours des {num} prochaines années, le relevé se poursuivra."),
    ("American oysters are raised in Atlantic Canada.",
     "Les huîtres américaines sont élevées dans le Canada atlantique."),
    ("Most fish in the sample were females; they were older than the males.",
     "La plupart des poissons de l'échantillon étaient des femelles; elles étaient plus âgées que les mâles."),
    ("Results for the whole area are given in a table.",
     "Les résultats pour l'ensemble de la zone sont présentés dans un tableau."),
    ("The fish were sampled at {num} ports.",
     "Les poissons ont été échantillonnés dans {num} ports."),
    ("Catches represented half of the quota.",
     "Les captures représentaient la moitié du quota."),
    ("Values were lower than in {year0}.",
     "Les valeurs étaient inférieures à celles de {year0}."),
    ("This is an important result.",
     "Ce résultat est important."),
    ("Data from one boat were compared with data from another.",
     "Les données d'un bateau ont été comparées à celles d'un autre."),
    # Punctuation.
    ("Note: the values for {year} are preliminary.",
     "Remarque : les valeurs pour {year} sont préliminaires."),
    ("{Sp} (see Figure {fig}) is common {region_in}.",
     "{Le_sp} (voir la figure {fig}) est commun{e_sp} {region_in}."),
    ("Is {sp} found {region_in}? Yes, mainly in {month}.",
     "Trouve-t-on {le_sp} {region_in}? Oui, surtout en {month}."),
    ("The word \"stock\" means the same thing in both languages.",
     "Le mot « stock » a le même sens dans les deux langues."),
    # Glossary entries: names and phrases on their own.
    ("{Sp} in {div}",
     "{Le_sp} {dans_div}"),
    ("{Ind} {region_in}",
     "{Le_ind} {region_in}"),
    ("In {month} {year}",
     "En {month} {year}"),
    ("{t} of {sp}",
     "{t} {de_sp}"),
    ("{Measure}",
     "{Measure}"),
    ("{Survey}",
     "{Le_survey}"),
    ("The {fishery} fishery",
     "La {fishery}"),
]


# --------------------------------------------------------------------------------------------------------------------
# Generation.
# --------------------------------------------------------------------------------------------------------------------


def slots(rng: random.Random, theme: dict) -> tuple[dict, dict]:
    """English and French slot values for one row of a publication about `theme`."""
    sp_en, sp_fr = SPECIES[theme["species"]]
    sp2_key = rng.choice(sorted(k for k in SPECIES if k != theme["species"]))
    sp2_en, sp2_fr = SPECIES[sp2_key]
    div_en, div_fr = DIVISIONS[theme["div"]]
    region = REGIONS[rng.choice(ENV_REGIONS)] if rng.random() < 0.5 else REGIONS[theme["region"]]
    survey_en, survey_fr = theme["survey"]
    ind_en, ind_fr = rng.choice(INDICATORS)
    state = rng.choice(STATES)
    trend = rng.choice(TRENDS)
    trend_pl = rng.choice(TRENDS)
    fishery_en, fishery_fr = rng.choice(FISHERIES)
    measure_en, measure_fr = rng.choice(MEASURES)
    zone_en, zone_fr = theme["zone"]
    author_en, author_fr = rng.choice(AUTHORS)
    mpa_en, mpa_fr = rng.choice(MPAS)
    bay_en, bay_fr = rng.choice(BAYS)
    pop_en, pop_fr = rng.choice(POPULATIONS)
    status_en, status_fr = rng.choice(COSEWIC_STATUS)
    num_en, num_fr = rng.choice(NUMBER_WORDS)
    ord_en, ord_fr = rng.choice(ORDINALS)
    month = rng.randrange(12) if rng.random() < 0.3 else rng.choice((5, 6, 7, 8))
    month_en, month_fr = MONTHS[month]

    year = theme["year"] - 1
    year0 = year - rng.randint(3, 25)
    y1 = year - rng.randint(5, 30)
    tonnes = rng.choice((rng.randint(1, 99) * 10, rng.randint(10, 999) * 100, rng.randint(100, 600) * 100))
    pct = rng.randint(2, 95)
    pct2 = rng.randint(2, 95)
    rate = rng.randint(8, 35)  # removal rate of a harvest control rule
    lrp = rng.choice((30, 40, 50))  # LRP as a percentage of BMSY
    cond = rng.randint(85, 115) / 100  # Fulton's condition
    cond_sd = rng.randint(1, 9) / 100
    kg = rng.choice((250, 500, 1000, 2000))
    small_pct = rng.randint(1, 4)
    o2 = rng.randint(15, 30)  # hypoxic oxygen saturation
    t_small = rng.randint(1, 99) * rng.choice((1, 10))
    n = rng.randint(120, 9500)
    temp = rng.randint(-15, 60) / 10
    dtemp = rng.randint(3, 35) / 10
    length = rng.randint(150, 950) / 10
    mls = rng.choice((43, 45, 48, 81, 95, 102))
    conc = rng.randint(1, 50) / 10
    vol = rng.randint(10, 120) * 10
    area = rng.choice((2364, 4364, 11619, 1362, 2, 1350))
    day1 = rng.randint(1, 12)
    day2 = day1 + rng.randint(8, 18)
    date_month = rng.randrange(12)
    tab = rng.randint(1, 12)
    fig = rng.randint(1, 25)

    common = {
        "year": year, "year0": year0, "year1": year + rng.randint(1, 3), "y1": y1, "y2": year,
        "pubyear": theme["year"], "pub": theme["pub"], "vessel": rng.choice(VESSELS),
        "fig": fig, "tab": tab, "depth": rng.choice((200, 300, 400, 500, 750, 1000)),
        "age": rng.randint(3, 8), "span": year - rng.randint(1950, 1990) + 1, "mls": mls,
    }
    E = dict(
        common,
        sp=sp_en, Sp=cap(sp_en), sp2=sp2_en, div=div_en,
        region_in=region.en_in, survey=survey_en, ind=ind_en, Ind=cap(ind_en), state=state[0],
        trend=trend[0], trend_pp=trend[1], trend_pl_en=trend_pl[0], fishery=fishery_en, measure=measure_en,
        zone=zone_en, author=author_en, mpa=mpa_en, bay=bay_en, pop=pop_en, status=status_en,
        num=num_en, ordinal=ord_en, month=month_en,
        t=f"{int_en(tonnes)} t", pct=f"{pct}%", pct2=f"{pct2}%", rate=f"{rate}%", lrp=f"{lrp}%", n=int_en(n),
        temp=f"{dec_en(temp)}°C", dtemp=f"{dec_en(dtemp)}°C", len=dec_en(length), conc=dec_en(conc),
        vol=int_en(vol), area=int_en(area), cond=dec_en(cond, 2), cond_sd=dec_en(cond_sd, 2), kg=int_en(kg),
        small_pct=f"{small_pct}%", o2=f"{o2}%", t_small=f"{int_en(t_small)} t",
    )
    F = dict(
        common,
        le_sp=sp_fr.le, Le_sp=cap(sp_fr.le), du_sp=sp_fr.du, au_sp=sp_fr.au, de_sp=sp_fr.de, e_sp=sp_fr.e,
        de_sp2=sp2_fr.de, dans_div="dans " + div_fr.le,
        region_in=region.fr_in, le_survey=survey_fr.le, du_survey=survey_fr.du,
        le_ind=ind_fr.le, Le_ind=cap(ind_fr.le), du_ind=ind_fr.du,
        state=state[2] if ind_fr.gender == "f" else state[1],
        trend=trend_fr(trend, ind_fr), trend_pl=trend_fr(trend_pl, gender="m", plural=True),
        fishery=fishery_fr, measure=measure_fr, zone=zone_fr, author=author_fr, mpa=mpa_fr, bay=bay_fr,
        pop=pop_fr, status=status_fr, num=num_fr, ordinal=ord_fr, month=month_fr,
        t=f"{int_fr(tonnes)} t", pct=f"{pct} %", pct2=f"{pct2} %", rate=f"{rate} %", lrp=f"{lrp} %", n=int_fr(n),
        temp=f"{dec_fr(temp)} °C", dtemp=f"{dec_fr(dtemp)} °C", len=dec_fr(length), conc=dec_fr(conc),
        vol=int_fr(vol), area=int_fr(area), cond=dec_fr(cond, 2), cond_sd=dec_fr(cond_sd, 2), kg=int_fr(kg),
        small_pct=f"{small_pct} %", o2=f"{o2} %", t_small=f"{int_fr(t_small)} t",
        de_month=("d'" if month_fr[0] in "aeiou" else "de ") + month_fr,
    )
    # Derived forms used only by PRETRAIN_TEMPLATES. They draw nothing from `rng`, so adding them leaves the
    # domain file unchanged.
    E.update(Survey=cap(survey_en), Measure=cap(measure_en), Region=cap(region.en))
    F.update(
        Le_survey=cap(survey_fr.le), Measure=cap(measure_fr), le_sp2=sp2_fr.le,
        Le_region=cap(region.fr.bare if region.fr.bare == "Terre-Neuve-et-Labrador" else region.fr.le),
        trend_fpl=trend_fr(trend_pl, gender="f", plural=True),
        e_pair="e" if sp_fr.gender == sp2_fr.gender == "f" else "",
    )
    # Dates: a survey or season span within one month, and a meeting date.
    E["date1"], F["date1"] = date_en(day1, date_month), date_fr(day1, date_month)
    E["date2"], F["date2"] = date_en(day2, date_month), date_fr(day2, date_month)
    meeting_day = rng.randint(1, 28)
    E["date"] = date_en(meeting_day, date_month, theme["year"])
    F["date"] = date_fr(meeting_day, date_month, theme["year"])
    return E, F


def fill(template: tuple[str, str], E: dict, F: dict) -> tuple[str, str]:
    en, fr = template
    if "{date1} to {date2}, {year}" in en:  # "from June 3 to 17, 2018" / "du 3 au 17 juin 2018"
        E = dict(E, date2=E["date2"].split()[-1])
        F = dict(F, date1=F["date1"].split()[0])
    return en.format(**E), fr.format(**F)


def make_publications(rng: random.Random, n_pubs: int, years: tuple[int, int] = YEARS) -> list[dict]:
    used: set[str] = set()
    pubs = []
    while len(pubs) < n_pubs:
        year = rng.randint(*years)
        pub = f"{year}/{rng.randint(1, 80):03d}"
        if pub in used:
            continue
        used.add(pub)
        species, region, div = rng.choice(STOCKS)
        pubs.append(
            {
                "pub": pub,
                "year": year,
                "species": species,
                "region": region,
                "div": div,
                "survey": rng.choice(SURVEYS),
                "zone": rng.choice(ZONES),
            }
        )
    pubs.sort(key=lambda p: p["pub"])
    # Half the publications were written in English, half in French.
    langs = ["en"] * (n_pubs // 2) + ["fr"] * (n_pubs - n_pubs // 2)
    rng.shuffle(langs)
    for p, lang in zip(pubs, langs):
        p["lang"] = lang
    return pubs


def row_counts(rng: random.Random, n_pubs: int, n_rows: int) -> list[int]:
    counts = [rng.randint(8, 32) for _ in range(n_pubs)]
    while sum(counts) > n_rows:
        i = rng.randrange(n_pubs)
        if counts[i] > 5:
            counts[i] -= 1
    while sum(counts) < n_rows:
        counts[rng.randrange(n_pubs)] += 1
    return counts


def template_weights(seed: int, exponent: float = ZIPF_EXPONENT) -> list[float]:
    """Zipf weights of TEMPLATES: a seeded ranking of the sentence types, weight 1/rank**exponent."""
    order = list(range(len(TEMPLATES)))
    random.Random(seed + 1).shuffle(order)
    weights = [0.0] * len(TEMPLATES)
    for rank, index in enumerate(order, start=1):
        weights[index] = rank**-exponent
    return weights


def pair_row(pub: dict, en: str, fr: str) -> dict:
    """One row in the direction the publication was written: (source, target) = (en, fr) or (fr, en)."""
    if pub["lang"] == "en":
        return {"source": en, "target": fr, "source_lang": "en", "pub_number": pub["pub"]}
    return {"source": fr, "target": en, "source_lang": "fr", "pub_number": pub["pub"]}


def generate(
    seed: int = DEFAULT_SEED,
    n_rows: int = DEFAULT_ROWS,
    n_pubs: int = DEFAULT_PUBS,
    years: tuple[int, int] = YEARS,
    ranking_seed: int | None = None,
) -> list[dict]:
    """Domain rows; `ranking_seed` (default: `seed`) fixes which sentence types are common."""
    rng = random.Random(seed)
    weights = template_weights(seed if ranking_seed is None else ranking_seed)
    pubs = make_publications(rng, n_pubs, years)
    rows = []
    for pub, count in zip(pubs, row_counts(rng, n_pubs, n_rows)):
        seen: set[str] = set()
        while count:
            template = rng.choices(TEMPLATES, weights)[0]
            en, fr = fill(template, *slots(rng, pub))
            if en in seen:  # no repeated sentence within a publication
                continue
            if not all(MIN_WORDS <= len(text.split()) <= MAX_WORDS for text in (en, fr)):
                continue  # a long slot value made the sentence too long
            seen.add(en)
            count -= 1
            rows.append(pair_row(pub, en, fr))
    return rows


def generate_pretrain(
    seed: int = PRETRAIN_SEED, n_rows: int = PRETRAIN_ROWS, n_pubs: int = PRETRAIN_PUBS
) -> list[dict]:
    """Rows of PRETRAIN_TEMPLATES, laid out as `generate` lays out the domain file (publications, half of them
    French), with some rows made of two sentences so that the bases also see longer inputs."""
    rng = random.Random(seed)
    pubs = make_publications(rng, n_pubs)
    rows = []
    for pub, count in zip(pubs, row_counts(rng, n_pubs, n_rows)):
        seen: set[str] = set()
        while count:
            en, fr = fill(rng.choice(PRETRAIN_TEMPLATES), *slots(rng, pub))
            if en.endswith(".") and rng.random() < PRETRAIN_JOINED:
                en2, fr2 = fill(rng.choice(PRETRAIN_TEMPLATES), *slots(rng, pub))
                if en2.endswith("."):
                    en, fr = f"{en} {en2}", f"{fr} {fr2}"
            if en in seen or not all(len(text.split()) <= MAX_WORDS for text in (en, fr)):
                continue
            seen.add(en)
            count -= 1
            rows.append(pair_row(pub, en, fr))
    return rows


def generate_heldout(domain: list[dict], seed: int = HELDOUT_SEED) -> list[dict]:
    """Rows of later publications with the domain file's sentence types and frequencies, minus every row whose
    source or target sentence is a sentence of `domain`, on either side (a French source of the held-out file can be
    the French target of a domain row: `csas check-data --against` counts those)."""
    seen = {text for row in domain for text in (row["source"], row["target"])}
    rows = generate(seed, HELDOUT_ROWS, HELDOUT_PUBS, HELDOUT_YEARS, ranking_seed=DEFAULT_SEED)
    return [row for row in rows if row["source"] not in seen and row["target"] not in seen]


def check_disjoint(domain: list[dict], pretrain: list[dict]) -> None:
    """The two files share no template and no sentence."""
    shared = {en for en, _ in TEMPLATES} & {en for en, _ in PRETRAIN_TEMPLATES}
    if shared:
        raise ValueError(f"templates in both lists: {sorted(shared)}")
    domain_texts = {text for row in domain for text in (row["source"], row["target"])}
    for row in pretrain:
        for text in (row["source"], row["target"]):
            if text in domain_texts:
                raise ValueError(f"a pretraining sentence is also in the domain file: {text!r}")


def check(rows: list[dict]) -> None:
    """Invariants of the shipped file (raise on violation)."""
    for row in rows:
        for text in (row["source"], row["target"]):
            words = len(text.split())
            if not MIN_WORDS <= words <= MAX_WORDS:
                raise ValueError(f"{words} words: {text!r}")
            if "{" in text or "}" in text or "  " in text:
                raise ValueError(f"unfilled or badly spaced: {text!r}")
    french = "".join(r["source"] if r["source_lang"] == "fr" else r["target"] for r in rows)
    missing = [c for c in FRENCH_LETTERS if c not in french]
    if missing:
        raise ValueError(f"French text lacks {missing}")
    alltext = "".join(r["source"] + r["target"] for r in rows)
    ascii_missing = [c for c in REQUIRED_ASCII if c not in alltext]
    if ascii_missing:
        raise ValueError(f"text lacks {ascii_missing}")


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"domain file (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--heldout-out",
        type=Path,
        default=DEFAULT_HELDOUT_OUT,
        help=f"held-out domain file (default: {DEFAULT_HELDOUT_OUT})",
    )
    parser.add_argument(
        "--pretrain-out",
        type=Path,
        default=DEFAULT_PRETRAIN_OUT,
        help=f"pretraining file (default: {DEFAULT_PRETRAIN_OUT})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--pubs", type=int, default=DEFAULT_PUBS)
    parser.add_argument("--pretrain-rows", type=int, default=PRETRAIN_ROWS)
    args = parser.parse_args(argv)
    rows = generate(args.seed, args.rows, args.pubs)
    check(rows)
    heldout = generate_heldout(rows)
    pretrain = generate_pretrain(n_rows=args.pretrain_rows)
    check_disjoint(rows + heldout, pretrain)
    for path, data in ((args.out, rows), (args.heldout_out, heldout), (args.pretrain_out, pretrain)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(data).encode("utf-8"))
        print(f"wrote {len(data)} rows to {path}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
