"""The sample dataset: a small multilingual BEIR-format collection, written for rerankd.

Seven languages (en, zh, ja, de, fr, es, pt), twelve cities, five templated documents per city and
language (overview, river, landmark, metro, a "travellers also visit" distractor that names another
city), one question per city and language with graded judgements. The facts are approximate; the
collection exists to exercise the harness, with enough lexical overlap between documents (the city's
name in every one of its documents, "river" in every river document, Latin-script names shared across
languages) that BM25 gets a useful but imperfect score.

Regenerate the files under `src/rerankd/evaluation/sample/` with `python tools/make_sample_dataset.py`
(deterministic: the same code always writes the same bytes). It lives outside the package: the wheel ships
the data, not its generator.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "src" / "rerankd" / "evaluation" / "sample"
LANGS = ("en", "zh", "ja", "de", "fr", "es", "pt")
ASPECTS = ("river", "landmark", "population", "metro")


@dataclass(frozen=True)
class City:
    key: str
    names: dict[str, str]
    country: dict[str, str]  # en: name; de/fr/pt: "of <country>" forms; others: name
    capital: bool
    river: dict[str, str]
    landmark: dict[str, str]  # de/fr/es: with article; pt: "of <landmark>" form
    year: int
    population_k: int  # thousands
    metro_lines: int


def _row(*values: str) -> dict[str, str]:
    return dict(zip(LANGS, values, strict=True))


CITIES: tuple[City, ...] = (
    City(
        "paris",
        _row("Paris", "巴黎", "パリ", "Paris", "Paris", "París", "Paris"),
        _row("France", "法国", "フランス", "von Frankreich", "de la France", "Francia", "da França"),
        True,
        _row("the Seine", "塞纳河", "セーヌ川", "Seine", "la Seine", "Sena", "Sena"),
        _row(
            "the Eiffel Tower",
            "埃菲尔铁塔",
            "エッフェル塔",
            "Der Eiffelturm",
            "la tour Eiffel",
            "la Torre Eiffel",
            "da Torre Eiffel",
        ),
        1889,
        2100,
        16,
    ),
    City(
        "berlin",
        _row("Berlin", "柏林", "ベルリン", "Berlin", "Berlin", "Berlín", "Berlim"),
        _row("Germany", "德国", "ドイツ", "von Deutschland", "de l'Allemagne", "Alemania", "da Alemanha"),
        True,
        _row("the Spree", "施普雷河", "シュプレー川", "Spree", "la Spree", "Spree", "Spree"),
        _row(
            "the Brandenburg Gate",
            "勃兰登堡门",
            "ブランデンブルク門",
            "Das Brandenburger Tor",
            "la porte de Brandebourg",
            "la Puerta de Brandeburgo",
            "do Portão de Brandemburgo",
        ),
        1791,
        3700,
        9,
    ),
    City(
        "london",
        _row("London", "伦敦", "ロンドン", "London", "Londres", "Londres", "Londres"),
        _row(
            "the United Kingdom",
            "英国",
            "イギリス",
            "des Vereinigten Königreichs",
            "du Royaume-Uni",
            "Reino Unido",
            "do Reino Unido",
        ),
        True,
        _row("the Thames", "泰晤士河", "テムズ川", "Themse", "la Tamise", "Támesis", "Tâmisa"),
        _row(
            "Tower Bridge",
            "伦敦塔桥",
            "タワーブリッジ",
            "Die Tower Bridge",
            "le Tower Bridge",
            "el Puente de la Torre",
            "da Tower Bridge",
        ),
        1894,
        8900,
        11,
    ),
    City(
        "rome",
        _row("Rome", "罗马", "ローマ", "Rom", "Rome", "Roma", "Roma"),
        _row("Italy", "意大利", "イタリア", "von Italien", "de l'Italie", "Italia", "da Itália"),
        True,
        _row("the Tiber", "台伯河", "テヴェレ川", "Tiber", "le Tibre", "Tíber", "Tibre"),
        _row(
            "the Trevi Fountain",
            "特雷维喷泉",
            "トレビの泉",
            "Der Trevi-Brunnen",
            "la fontaine de Trevi",
            "la Fontana de Trevi",
            "da Fontana di Trevi",
        ),
        1762,
        2800,
        3,
    ),
    City(
        "madrid",
        _row("Madrid", "马德里", "マドリード", "Madrid", "Madrid", "Madrid", "Madrid"),
        _row("Spain", "西班牙", "スペイン", "von Spanien", "de l'Espagne", "España", "da Espanha"),
        True,
        _row(
            "the Manzanares",
            "曼萨纳雷斯河",
            "マンサナレス川",
            "Manzanares",
            "le Manzanares",
            "Manzanares",
            "Manzanares",
        ),
        _row(
            "the Puerta de Alcalá",
            "阿尔卡拉门",
            "アルカラ門",
            "Die Puerta de Alcalá",
            "la Puerta de Alcalá",
            "la Puerta de Alcalá",
            "da Porta de Alcalá",
        ),
        1778,
        3300,
        12,
    ),
    City(
        "vienna",
        _row("Vienna", "维也纳", "ウィーン", "Wien", "Vienne", "Viena", "Viena"),
        _row("Austria", "奥地利", "オーストリア", "von Österreich", "de l'Autriche", "Austria", "da Áustria"),
        True,
        _row("the Danube", "多瑙河", "ドナウ川", "Donau", "le Danube", "Danubio", "Danúbio"),
        _row(
            "the Vienna State Opera",
            "维也纳国家歌剧院",
            "ウィーン国立歌劇場",
            "Die Wiener Staatsoper",
            "l'Opéra d'État de Vienne",
            "la Ópera Estatal de Viena",
            "da Ópera Estatal de Viena",
        ),
        1869,
        2000,
        5,
    ),
    City(
        "budapest",
        _row("Budapest", "布达佩斯", "ブダペスト", "Budapest", "Budapest", "Budapest", "Budapeste"),
        _row("Hungary", "匈牙利", "ハンガリー", "von Ungarn", "de la Hongrie", "Hungría", "da Hungria"),
        True,
        _row("the Danube", "多瑙河", "ドナウ川", "Donau", "le Danube", "Danubio", "Danúbio"),
        _row(
            "the Hungarian Parliament Building",
            "匈牙利国会大厦",
            "ハンガリー国会議事堂",
            "Das Ungarische Parlamentsgebäude",
            "le Parlement hongrois",
            "el Parlamento de Hungría",
            "do Parlamento Húngaro",
        ),
        1904,
        1700,
        4,
    ),
    City(
        "prague",
        _row("Prague", "布拉格", "プラハ", "Prag", "Prague", "Praga", "Praga"),
        _row(
            "the Czech Republic",
            "捷克",
            "チェコ",
            "von Tschechien",
            "de la Tchéquie",
            "Chequia",
            "da Chéquia",
        ),
        True,
        _row("the Vltava", "伏尔塔瓦河", "ヴルタヴァ川", "Moldau", "la Vltava", "Moldava", "Moldava"),
        _row(
            "the Dancing House",
            "跳舞的房子",
            "ダンシング・ハウス",
            "Das Tanzende Haus",
            "la Maison dansante",
            "la Casa Danzante",
            "da Casa Dançante",
        ),
        1996,
        1300,
        3,
    ),
    City(
        "cairo",
        _row("Cairo", "开罗", "カイロ", "Kairo", "Le Caire", "El Cairo", "Cairo"),
        _row("Egypt", "埃及", "エジプト", "von Ägypten", "de l'Égypte", "Egipto", "do Egito"),
        True,
        _row("the Nile", "尼罗河", "ナイル川", "Nil", "le Nil", "Nilo", "Nilo"),
        _row(
            "the Cairo Tower",
            "开罗塔",
            "カイロタワー",
            "Der Cairo Tower",
            "la tour du Caire",
            "la Torre de El Cairo",
            "da Torre do Cairo",
        ),
        1961,
        10000,
        3,
    ),
    City(
        "tokyo",
        _row("Tokyo", "东京", "東京", "Tokio", "Tokyo", "Tokio", "Tóquio"),
        _row("Japan", "日本", "日本", "von Japan", "du Japon", "Japón", "do Japão"),
        True,
        _row("the Sumida", "隅田川", "隅田川", "Sumida", "la Sumida", "Sumida", "Sumida"),
        _row(
            "Tokyo Tower",
            "东京塔",
            "東京タワー",
            "Der Tokyo Tower",
            "la tour de Tokyo",
            "la Torre de Tokio",
            "da Torre de Tóquio",
        ),
        1958,
        14000,
        13,
    ),
    City(
        "lisbon",
        _row("Lisbon", "里斯本", "リスボン", "Lissabon", "Lisbonne", "Lisboa", "Lisboa"),
        _row("Portugal", "葡萄牙", "ポルトガル", "von Portugal", "du Portugal", "Portugal", "de Portugal"),
        True,
        _row("the Tagus", "塔霍河", "テージョ川", "Tejo", "le Tage", "Tajo", "Tejo"),
        _row(
            "the Belém Tower",
            "贝伦塔",
            "ベレンの塔",
            "Der Turm von Belém",
            "la tour de Belém",
            "la Torre de Belém",
            "da Torre de Belém",
        ),
        1519,
        550,
        4,
    ),
    City(
        "shanghai",
        _row("Shanghai", "上海", "上海", "Shanghai", "Shanghai", "Shanghái", "Xangai"),
        _row("China", "中国", "中国", "in China", "de la Chine", "China", "da China"),
        False,
        _row("the Huangpu", "黄浦江", "黄浦江", "Huangpu", "le Huangpu", "Huangpu", "Huangpu"),
        _row(
            "the Oriental Pearl Tower",
            "东方明珠塔",
            "東方明珠塔",
            "Der Oriental Pearl Tower",
            "la tour de la Perle de l'Orient",
            "la Torre de la Perla Oriental",
            "da Torre Pérola Oriental",
        ),
        1994,
        24900,
        20,
    ),
)


def _population(lang: str, k: int) -> str:
    """A population with its unit, written the way the language writes it."""
    millions = f"{k / 1000:.1f}".removesuffix(".0")
    if lang in ("zh", "ja"):
        return f"{k // 10}万" + ("人" if lang == "ja" else "")
    if k >= 1000:
        dec = millions.replace(".", ",")
        return {
            "en": f"{millions} million inhabitants",
            "de": f"{dec} Millionen Einwohner",
            "fr": f"{dec} millions d'habitants",
            "es": f"{dec} millones de habitantes",
            "pt": f"{dec} milhões de habitantes",
        }[lang]
    return {
        "en": f"{k},000 inhabitants",
        "de": f"{k}.000 Einwohner",
        "fr": f"{k} 000 habitants",
        "es": f"{k}.000 habitantes",
        "pt": f"{k} mil habitantes",
    }[lang]


def _fr_at(place: str) -> str:
    return "au " + place[3:] if place.startswith("Le ") else "à " + place


def _fr_of(noun: str) -> str:
    if noun.startswith(("le ", "Le ")):
        return "du " + noun[3:]
    if noun.startswith(("les ", "Les ")):
        return "des " + noun[4:]
    return "de " + noun


def _es_of(noun: str) -> str:
    return "del " + noun[3:] if noun.startswith("el ") else "de " + noun


def _pt_in(place: str) -> str:
    return "no Cairo" if place == "Cairo" else "em " + place


def _pt_of(place: str) -> str:
    return "do Cairo" if place == "Cairo" else "de " + place


def _pt_to(place: str) -> str:
    return "ao Cairo" if place == "Cairo" else "a " + place


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _low(s: str) -> str:
    return s[:1].lower() + s[1:]


Doc = Callable[[City, City], str]

# Per language: the five documents (given the city and the city its distractor names) and the four
# questions. Each template is one or two plain sentences, as a search snippet would be.
DOCS: dict[str, dict[str, Doc]] = {
    "en": {
        "overview": lambda c, o: (
            f"{c.names['en']} is the {'capital' if c.capital else 'largest city'} of {c.country['en']} "
            f"and has a population of about {_population('en', c.population_k)}."
        ),
        "river": lambda c, o: (
            f"{c.names['en']} lies on {c.river['en']}, a river that flows through the city centre and "
            "shaped the history of the city."
        ),
        "landmark": lambda c, o: (
            f"{_cap(c.landmark['en'])} in {c.names['en']} was completed in {c.year} and is one of the most "
            "visited sights of the city."
        ),
        "metro": lambda c, o: (
            f"The metro network of {c.names['en']} has {c.metro_lines} lines that connect the centre with "
            "the suburbs."
        ),
        "distractor": lambda c, o: (
            f"Many travellers combine a stay in {c.names['en']} with a trip to {o.names['en']}; the two "
            "cities are often compared for their museums and their food."
        ),
    },
    "zh": {
        "overview": lambda c, o: (
            f"{c.names['zh']}是{c.country['zh']}的{'首都' if c.capital else '最大城市'}，"
            f"人口约{_population('zh', c.population_k)}。"
        ),
        "river": lambda c, o: f"{c.river['zh']}流经{c.names['zh']}市中心，塑造了这座城市的历史。",
        "landmark": lambda c, o: (
            f"{c.names['zh']}的{c.landmark['zh']}于{c.year}年建成，是该市游客最多的景点之一。"
        ),
        "metro": lambda c, o: f"{c.names['zh']}的地铁网络共有{c.metro_lines}条线路，连接市中心和郊区。",
        "distractor": lambda c, o: (
            f"许多游客在游览{c.names['zh']}时也会去{o.names['zh']}，这两座城市常因博物馆和美食而被比较。"
        ),
    },
    "ja": {
        "overview": lambda c, o: (
            f"{c.names['ja']}は{c.country['ja']}の{'首都' if c.capital else '最大の都市'}で、"
            f"人口は約{_population('ja', c.population_k)}です。"
        ),
        "river": lambda c, o: (
            f"{c.names['ja']}の中心部を{c.river['ja']}が流れており、この川が町の歴史を形作ってきました。"
        ),
        "landmark": lambda c, o: (
            f"{c.names['ja']}の{c.landmark['ja']}は{c.year}年に完成し、市内で最も人気のある観光地の一つです。"
        ),
        "metro": lambda c, o: (
            f"{c.names['ja']}の地下鉄は{c.metro_lines}路線あり、中心部と郊外を結んでいます。"
        ),
        "distractor": lambda c, o: (
            f"{c.names['ja']}を訪れる旅行者の多くは{o.names['ja']}にも足を延ばし、"
            "二つの都市は博物館や料理でよく比較されます。"
        ),
    },
    "de": {
        "overview": lambda c, o: (
            f"{c.names['de']} ist die {'Hauptstadt' if c.capital else 'größte Stadt'} {c.country['de']} "
            f"und hat etwa {_population('de', c.population_k)}."
        ),
        "river": lambda c, o: (
            f"{c.names['de']} liegt am Fluss {c.river['de']}, der durch das Stadtzentrum fließt und die "
            "Geschichte der Stadt geprägt hat."
        ),
        "landmark": lambda c, o: (
            f"{c.landmark['de']} in {c.names['de']} wurde im Jahr {c.year} fertiggestellt und gehört zu den "
            "meistbesuchten Sehenswürdigkeiten der Stadt."
        ),
        "metro": lambda c, o: (
            f"Das U-Bahn-Netz von {c.names['de']} hat {c.metro_lines} Linien, die das Zentrum mit den "
            "Vororten verbinden."
        ),
        "distractor": lambda c, o: (
            f"Viele Reisende verbinden einen Aufenthalt in {c.names['de']} mit einem Ausflug nach "
            f"{o.names['de']}; beide Städte werden oft wegen ihrer Museen und ihrer Küche verglichen."
        ),
    },
    "fr": {
        "overview": lambda c, o: (
            f"{c.names['fr']} est {'la capitale' if c.capital else 'la plus grande ville'} {c.country['fr']} "
            f"et compte environ {_population('fr', c.population_k)}."
        ),
        "river": lambda c, o: (
            f"La ville {_fr_of(c.names['fr'])} est traversée par {c.river['fr']}, un cours d'eau qui passe par le centre-ville "
            "et a façonné son histoire."
        ),
        "landmark": lambda c, o: (
            f"La construction {_fr_of(c.landmark['fr'])} {_fr_at(c.names['fr'])} s'est achevée en {c.year} ; "
            "c'est l'un des sites les plus visités de la ville."
        ),
        "metro": lambda c, o: (
            f"Le réseau de métro {_fr_of(c.names['fr'])} compte {c.metro_lines} lignes qui relient le centre "
            "à la banlieue."
        ),
        "distractor": lambda c, o: (
            f"De nombreux voyageurs combinent un séjour {_fr_at(c.names['fr'])} avec une excursion "
            f"{_fr_at(o.names['fr'])} ; les deux villes sont souvent comparées pour leurs musées et leur cuisine."
        ),
    },
    "es": {
        "overview": lambda c, o: (
            f"{c.names['es']} es {'la capital' if c.capital else 'la ciudad más grande'} de {c.country['es']} "
            f"y tiene unos {_population('es', c.population_k)}."
        ),
        "river": lambda c, o: (
            f"{c.names['es']} se encuentra a orillas del río {c.river['es']}, que atraviesa el centro de la "
            "ciudad y marcó su historia."
        ),
        "landmark": lambda c, o: (
            f"La construcción {_es_of(c.landmark['es'])} en {c.names['es']} terminó en {c.year}; es uno de "
            "los lugares más visitados de la ciudad."
        ),
        "metro": lambda c, o: (
            f"La red de metro de {c.names['es']} tiene {c.metro_lines} líneas que conectan el centro con "
            "las afueras."
        ),
        "distractor": lambda c, o: (
            f"Muchos viajeros combinan una estancia en {c.names['es']} con una excursión a {o.names['es']}; "
            "las dos ciudades se comparan a menudo por sus museos y su gastronomía."
        ),
    },
    "pt": {
        "overview": lambda c, o: (
            f"{c.names['pt']} é {'a capital' if c.capital else 'a maior cidade'} {c.country['pt']} "
            f"e tem cerca de {_population('pt', c.population_k)}."
        ),
        "river": lambda c, o: (
            f"{c.names['pt']} fica às margens do rio {c.river['pt']}, que atravessa o centro da cidade e "
            "marcou a sua história."
        ),
        "landmark": lambda c, o: (
            f"A construção {c.landmark['pt']} {_pt_in(c.names['pt'])} terminou em {c.year}; é um dos locais "
            "mais visitados da cidade."
        ),
        "metro": lambda c, o: (
            f"A rede de metrô {_pt_of(c.names['pt'])} tem {c.metro_lines} linhas que ligam o centro aos subúrbios."
        ),
        "distractor": lambda c, o: (
            f"Muitos viajantes combinam uma estadia {_pt_in(c.names['pt'])} com uma viagem {_pt_to(o.names['pt'])}; "
            "as duas cidades são muitas vezes comparadas pelos seus museus e pela sua gastronomia."
        ),
    },
}

Question = Callable[[City], str]

QUESTIONS: dict[str, dict[str, Question]] = {
    "en": {
        "river": lambda c: f"Which river flows through {c.names['en']}?",
        "landmark": lambda c: f"When was {c.landmark['en']} built?",
        "population": lambda c: f"How many people live in {c.names['en']}?",
        "metro": lambda c: f"How many metro lines are there in {c.names['en']}?",
    },
    "zh": {
        "river": lambda c: f"哪条河流经{c.names['zh']}？",
        "landmark": lambda c: f"{c.landmark['zh']}是哪一年建成的？",
        "population": lambda c: f"{c.names['zh']}有多少人口？",
        "metro": lambda c: f"{c.names['zh']}有几条地铁线路？",
    },
    "ja": {
        "river": lambda c: f"{c.names['ja']}を流れる川は何ですか？",
        "landmark": lambda c: f"{c.landmark['ja']}はいつ建てられましたか？",
        "population": lambda c: f"{c.names['ja']}の人口は何人ですか？",
        "metro": lambda c: f"{c.names['ja']}には地下鉄の路線がいくつありますか？",
    },
    "de": {
        "river": lambda c: f"Welcher Fluss fließt durch {c.names['de']}?",
        "landmark": lambda c: f"Wann wurde {_low(c.landmark['de'])} gebaut?",
        "population": lambda c: f"Wie viele Menschen leben in {c.names['de']}?",
        "metro": lambda c: f"Wie viele U-Bahn-Linien gibt es in {c.names['de']}?",
    },
    "fr": {
        "river": lambda c: f"Quel cours d'eau traverse {c.names['fr']} ?",
        "landmark": lambda c: f"Quelle est la date de construction {_fr_of(c.landmark['fr'])} ?",
        "population": lambda c: f"Combien d'habitants compte {c.names['fr']} ?",
        "metro": lambda c: f"Combien de lignes de métro y a-t-il {_fr_at(c.names['fr'])} ?",
    },
    "es": {
        "river": lambda c: f"¿Qué río pasa por {c.names['es']}?",
        "landmark": lambda c: f"¿Cuándo se construyó {c.landmark['es']}?",
        "population": lambda c: f"¿Cuántas personas viven en {c.names['es']}?",
        "metro": lambda c: f"¿Cuántas líneas de metro hay en {c.names['es']}?",
    },
    "pt": {
        "river": lambda c: f"Que rio passa por {c.names['pt']}?",
        "landmark": lambda c: f"Em que ano terminou a construção {c.landmark['pt']}?",
        "population": lambda c: f"Quantas pessoas vivem {_pt_in(c.names['pt'])}?",
        "metro": lambda c: f"Quantas linhas de metrô existem {_pt_in(c.names['pt'])}?",
    },
}

# The distractor of city i names the city DISTRACTOR_STEP places further on.
DISTRACTOR_STEP = 5


def build() -> tuple[list[dict[str, str]], list[dict[str, str]], list[tuple[str, str, int]]]:
    """(corpus rows, query rows, qrels) for the sample collection."""
    corpus: list[dict[str, str]] = []
    queries: list[dict[str, str]] = []
    qrels: list[tuple[str, str, int]] = []
    n = len(CITIES)
    for li, lang in enumerate(LANGS):
        doc_ids: dict[tuple[str, str], str] = {}
        for ci, city in enumerate(CITIES):
            other = CITIES[(ci + DISTRACTOR_STEP) % n]
            for kind, make in DOCS[lang].items():
                doc_id = f"{lang}-d{len(doc_ids) + 1:03d}"
                doc_ids[(city.key, kind)] = doc_id
                corpus.append(
                    {"_id": doc_id, "title": city.names[lang], "text": make(city, other), "lang": lang}
                )
        for ci, city in enumerate(CITIES):
            aspect = ASPECTS[(ci + li) % len(ASPECTS)]
            qid = f"{lang}-q{ci + 1:02d}"
            queries.append({"_id": qid, "text": QUESTIONS[lang][aspect](city), "lang": lang})
            answer = "overview" if aspect == "population" else aspect
            judged = {doc_ids[(city.key, answer)]: 2}
            if answer != "overview":
                judged[doc_ids[(city.key, "overview")]] = 1
            # Both distractors that name the city are judged non-relevant: its own and the one of the
            # city whose trip leads here.
            judged[doc_ids[(city.key, "distractor")]] = 0
            judged[doc_ids[(CITIES[(ci - DISTRACTOR_STEP) % n].key, "distractor")]] = 0
            qrels.extend((qid, doc_id, grade) for doc_id, grade in judged.items())
    return corpus, queries, qrels


def write(out_dir: Path = SAMPLE_DIR) -> Path:
    corpus, queries, qrels = build()
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)

    def jsonl(rows: list[dict[str, str]]) -> str:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    (out_dir / "corpus.jsonl").write_text(jsonl(corpus), encoding="utf-8")
    (out_dir / "queries.jsonl").write_text(jsonl(queries), encoding="utf-8")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (out_dir / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


if __name__ == "__main__":
    target = write(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE_DIR)
    print(f"wrote {target}")
