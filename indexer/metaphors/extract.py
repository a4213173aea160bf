"""Candidate constructions from one turn's text, keyed by lemmas.

The author's images are short noun phrases built on a few construction patterns, so we look
for exactly those and key each hit by its lemmas: «карту смысла», «карты смысла» and «карта
смысла» all get the key ``карта смысл``. Russian uses pymorphy3 (accept a pattern if *any*
parse of a word fits, preferring dictionary words: the analyser has no context); English has
no tagger offline, so it uses function-word-bounded patterns ("X of Y", "X between Y",
adjective-suffix + noun) with word classes and noun lemmas from lemminflect's lexicon.

Patterns:
- ``gen``   RU noun + genitive noun (adjectives may sit in between): «карта (нашего) смысла»
- ``adj``   RU adjective/participle + agreeing noun: «нейронная сеть»
- ``prep``  RU noun + preposition + [numeral/adjective…] + noun: «мост между (двумя) мирами»,
  «ключ к пониманию», «окно в прошлое» (в/на/к/для/от only with the case they govern)
- ``of``    EN "X of Y": "map of meaning" ("map of hidden meanings" too: a modifier is skipped)
- ``prep``  EN "X between/through/… Y": "bridge between worlds"; "X to/into/for/from/in/on/over/
  under Y" only when X is a noun there and Y a noun (not an idiom: "in mind", "over time")
- ``adj``   EN adjective + noun: "neural network"
- ``nn``    EN noun–noun compound: "attention compass" (head = the last noun, dep = the modifier;
  word classes from lemminflect's lexicon, since English has no offline tagger here)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from indexer.textproc import is_cyrillic, morph, tokenize

#: Russian prepositions that build figurative "X <prep> Y" images («мост между мирами», «ключ к
#: пониманию», «окно в прошлое», «лекарство от скуки»), with the cases their noun takes after
#: them (None: any case but the nominative). The frequent ones (в, на, к, для, от) are held to
#: their cases so «в понедельник»-like adverbials of a verb do not become noise.
RU_PREP_CASES: dict[str, frozenset[str] | None] = {
    "между": None, "сквозь": None, "через": None, "из": None, "без": None, "над": None, "под": None,
    "внутри": None, "вне": None,
    "к": frozenset({"datv"}), "ко": frozenset({"datv"}),
    "для": frozenset({"gent", "gen2"}), "от": frozenset({"gent", "gen2"}),
    "в": frozenset({"accs", "loct", "loc2"}), "во": frozenset({"accs", "loct", "loc2"}),
    "на": frozenset({"accs", "loct", "loc2"}),
}
RU_PREPS = frozenset(RU_PREP_CASES)
EN_PREPS = frozenset({"between", "through", "across", "beyond", "without", "inside", "within"})
#: Frequent English prepositions ("key to understanding", "window into the mind", "recipe for
#: disaster", "anchor in the chaos"): taken only after a noun that is not a verb here, and before a
#: noun (after "to", a bare verb is an infinitive: "time to go").
EN_NOUN_PREPS = frozenset({"to", "into", "for", "from", "in", "on", "over", "under"})
#: Prepositions, which the lexicon also lists as adjectives ("after", "over"): never a noun's modifier.
_EN_PREP_WORDS = EN_PREPS | EN_NOUN_PREPS | {
    "of", "with", "by", "at", "about", "after", "before", "against", "above", "below", "near", "past", "behind",
    "beneath", "beside", "during", "since", "until", "upon", "toward", "towards", "via", "per", "around", "along",
    "among", "despite", "except", "unlike", "off", "up", "down"}
EN_STOP = frozenset(
    ["a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our", "their", "i", "you", "he", "she", "it", "we", "they", "me", "him", "us", "them", "of", "in", "on", "at", "to", "for", "from", "by", "with", "about", "as", "into", "onto", "between", "through", "across", "beyond", "without", "inside", "within", "and", "or", "but", "if", "then", "so", "not", "no", "nor", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could", "should", "may", "might", "must", "shall", "there", "here", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "all", "any", "each", "every", "some", "such", "more", "most", "other", "own", "same", "than", "too", "very", "just", "only", "also", "even", "still", "both", "either", "one", "two", "three", "many", "much", "few", "lot", "kind", "sort", "way", "thing", "things", "something", "anything", "nothing", "everything", "rather", "like", "another", "others", "neither", "ones",
     # first words of compound prepositions: "because of", "instead of", "out of" head no phrase
     "because", "instead", "regardless", "ahead", "out"]
)
_EN_ADJ_SUFFIX = re.compile(r"(?:al|ive|ous|ic|ful|less|able|ible|ary|ish|ant|ent|ular|ile)$")
_EN_ADJ = frozenset(
    ["black", "white", "dark", "light", "deep", "cold", "warm", "hot", "quiet", "silent", "soft", "hard", "old", "new", "small", "big", "great", "long", "short", "high", "low", "open", "empty", "full", "whole", "hidden", "inner", "outer", "living", "dead", "broken", "invisible", "neural", "large", "wild",
     # sensory and physical properties, where English images come from ("heavy heart", "bitter truth", "icy
     # stare"); no evaluative words ("better future" is literal, session 5)
     "heavy", "bitter", "sweet", "sour", "icy", "frosty", "frozen", "sharp", "blunt", "dull", "raw", "dry", "wet",
     "thin", "thick", "rough", "smooth", "bright", "dim", "pale", "loud", "narrow", "wide", "tight", "loose",
     "fresh", "rotten", "sticky", "slippery", "hollow", "solid", "bare", "naked", "burning", "boiling", "fierce",
     "gentle", "tender", "brittle", "slow", "stale", "bland", "murky", "foggy", "shallow", "steep", "stiff",
     "crooked", "twisted", "silky"]
)
_EN_DETS = frozenset(["a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our",
                      "their", "some", "any", "each", "every", "which", "what", "whose", "no"])
_SENT_END = re.compile(r"[.!?…\n]+")
#: Russian lemmas that are never the head or dependent of an image (pronoun-like nouns, units).
RU_STOP_LEMMAS = frozenset(
    ["это", "что", "кто", "который", "такой", "весь", "сам", "свой", "этот", "тот", "каждый", "любой", "другой", "один", "год", "день", "раз", "время", "час", "минута", "секунда", "неделя", "месяц", "человек", "люди",
     # days of the week («среда» is also an environment): «встреча в понедельник» is a time adverbial
     "понедельник", "вторник", "четверг", "пятница", "суббота", "воскресенье"]
)

#: Compound prepositions (preposition + a noun form that lost its meaning): «с помощью плагина»,
#: «в качестве псевдонима» hold no phrase «помощь плагина» / «качество псевдонима». Grammar, not a
#: word list about figurativeness: the noun after these prepositions never heads a candidate.
RU_COMPOUND_PREPS = frozenset(
    (prep, noun)
    for prep, nouns in (
        ("в", "качестве течение течении ходе рамках результате случае виде целях процессе отношении силу"),
        ("в", "пределах связи зависимости роли честь адрес области сфере интересах соответствии направлении"),
        ("в", "лице условиях"),
        ("во", "время избежание"),
        ("с", "помощью целью учётом учетом"),
        ("при", "помощи"),
        ("за", "счёт счет"),
        ("по", "мере поводу причине сравнению отношению части"),
        ("на", "основе основании протяжении"),
        ("со", "стороны"),
    )
    for noun in nouns.split()
)


@dataclass(frozen=True)
class Candidate:
    """One hit of a construction pattern in a text."""

    key: str
    """Lemma key, e.g. ``карта смысл``, ``мост между мир``, ``map of meaning``."""
    head: str
    """Lemma of the head noun (``карта``; for ``adj`` the noun too: ``сеть``)."""
    dep: str
    """Lemma of the dependent (``смысл``; for ``adj`` the adjective: ``нейронный``)."""
    construction: str
    """``gen``, ``adj``, ``prep``, ``of`` or ``nn``."""
    lang: str
    """``ru`` or ``en``."""
    surface: str
    """The words as written, e.g. ``карту смысла``."""
    label: str
    """A readable dictionary form: head in the nominative (``карта смысла``)."""
    start: int
    """Char offset of the surface in the text."""
    end: int
    sentence: str
    """The sentence the hit is in (stripped)."""
    sent_start: int
    """Char offset of the sentence in the text."""


# --------------------------------------------------------------------------- Russian morphology

@dataclass(frozen=True)
class _P:
    pos: str
    lemma: str
    case: str | None
    number: str | None
    gender: str | None
    known: bool
    apro: bool
    score: float = 1.0
    pltm: bool = False
    """A plural-only noun («часы», «ножницы»): its adjective agrees in the plural."""


#: Adjective lemmas pymorphy3 offers with the same tag and score as the common word, which the
#: author almost never means: «большая карта» is «большой», not the comparative «больший».
_RARE_ADJ_LEMMAS = frozenset({"больший"})


def _adj_lemma(p, word: str) -> str:
    """The masculine nominative singular of an adjective/participle reading, keeping its own
    stem: «лучшая» → «лучший» (not «наихороший»), «высшая» → «высший», «обучающая» →
    «обучающий» (a participle's normal form would be the verb)."""
    return _adj_form(p, word, {"masc", "sing", "nomn"})


def _adj_form(p, word: str, grams: set[str]) -> str:
    """The form of ``p``'s lexeme with ``grams`` and the same degree, nearest to ``word`` in spelling."""
    forms = [f.word for f in p.lexeme if grams <= set(f.tag.grammemes)
             and ("Supr" in f.tag) == ("Supr" in p.tag) and ("Cmp2" in f.tag) == ("Cmp2" in p.tag)]
    if not forms:
        f = p.inflect(grams)
        return f.word if f is not None else p.normal_form

    def shared(f: str) -> int:
        return next((i for i in range(min(len(f), len(word))) if f[i] != word[i]), min(len(f), len(word)))

    return max(forms, key=lambda f: (shared(f), -len(f)))


@lru_cache(maxsize=200_000)
def _parses(word: str) -> tuple[_P, ...]:
    out = []
    for p in morph().parse(word.lower()):
        t = p.tag
        lem = p.normal_form
        if t.POS in ("PRTF", "ADJF"):
            lem = _adj_lemma(p, word.lower())
        out.append(
            _P(
                pos=str(t.POS),
                lemma=lem.replace("ё", "е"),
                case=str(t.case) if t.case else None,
                number=str(t.number) if t.number else None,
                gender=str(t.gender) if t.gender else None,
                known=bool(p.is_known),
                apro="Apro" in t or "Anum" in t,
                score=float(p.score),
                pltm="Pltm" in t,
            )
        )
    # dictionary words first: pymorphy's guesser ranks e.g. «трансформера» oddly; among equally
    # likely adjective readings, the rare lemma last
    return tuple(sorted(out, key=lambda p: (not p.known, p.lemma in _RARE_ADJ_LEMMAS)))


_FUNCTION_POS = frozenset({"PREP", "CONJ", "PRCL", "NPRO", "INTJ", "ADVB", "PRED"})


def _nouns(word: str) -> list[_P]:
    """Noun readings of ``word``; none when it can also be a function word («после», «из»), or
    when its other readings are together more than twice as likely (pymorphy3's corpus
    frequencies): «веду» is «вести» (0.83), not «веда» (0.17); «тише» is «тихий», not «тиша»."""
    ps = _parses(word)
    if any(p.pos in _FUNCTION_POS for p in ps):
        return []
    nouns = [p for p in ps if p.pos == "NOUN"]
    if sum(p.score for p in nouns) * 2 < sum(p.score for p in ps if p.pos != "NOUN"):
        return []
    return [p for p in nouns if p.lemma not in RU_STOP_LEMMAS and len(p.lemma) > 2]


def _adjs(word: str) -> list[_P]:
    return [p for p in _parses(word) if p.pos in ("ADJF", "PRTF") and not p.apro]


def _agree(a: _P, n: _P) -> bool:
    if a.case != n.case or a.number != n.number:
        return False
    return a.number == "plur" or a.gender is None or n.gender is None or a.gender == n.gender or n.gender == "Ms-f"


@lru_cache(maxsize=50_000)
def _nominative(word: str, lemma_: str, pos: str, gender: str | None) -> str:
    """``word`` inflected to the nominative singular (agreeing with ``gender`` for adjectives;
    ``gender="plur"``: the nominative plural, for the adjective of a plural-only noun)."""
    for p in morph().parse(word.lower()):
        lem = _adj_lemma(p, word.lower()) if pos in ("ADJF", "PRTF") else p.normal_form
        if str(p.tag.POS) == pos and lem.replace("ё", "е") == lemma_:
            grams = {"nomn", "plur"} if gender == "plur" else {"nomn", "sing"}
            if pos in ("ADJF", "PRTF"):
                if gender in ("masc", "femn", "neut"):
                    grams.add(gender)
                return _adj_form(p, word.lower(), grams)
            f = p.inflect(grams) or p.inflect({"nomn"})
            if f is not None:
                return f.word
    return lemma_


# --------------------------------------------------------------------------- what is prose

#: What blanks out non-prose: not a space (words on both sides stay apart, as the brackets or
#: backticks it replaces kept them), not a word character, not a sentence end.
MASK = "\u2060"
_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
_INLINE = re.compile(
    r"(?P<code>(?<!`)(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`))"  # `code`, ``co`de``
    r"|(?P<embed>!\[\[[^\]\n]*\]\])"  # ![[image.png]]
    r"|(?P<wiki>\[\[(?P<target>[^\]|\n]*)(?:\|(?P<alias>[^\]\n]*))?\]\])"  # [[target|alias]]
    r"|(?P<img>!\[[^\]\n]*\]\([^)\s]*\))"  # ![alt](src)
    r"|(?P<href>(?<=\])\([^)\s]*(?:\s+\"[^\"\n]*\")?\))"  # the (url) of [text](url)
    r"|(?P<url>\b(?:[a-z][a-z0-9+.-]*://|www\.|mailto:)[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"])"
    r"|(?P<html><!--.*?-->|</?[A-Za-z][^<>\n]*>)"
    # identifiers written as code: self.blocks, tok_emb, forward(
    r"|(?P<ident>\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b"
    r"|\b[A-Za-z0-9]+(?:_+[A-Za-z0-9]+)+\b|\b[A-Za-z_][A-Za-z0-9_]*(?=\())",
    re.DOTALL)


def _blank(text: str) -> str:
    return "".join(ch if ch == "\n" else MASK for ch in text)


def mask_markup(text: str) -> str:
    """``text`` with what is not prose blanked (same length, so offsets stay valid): fenced and
    indented code blocks, inline code, URLs, link targets and embeds, HTML, and identifiers
    written as code (``self.blocks``, ``tok_emb``, ``forward(``: pasted code that lost its
    fences). Words there are names, not uses of a phrase: ``for block in self.blocks`` holds no
    «block in self». A wikilink's alias is what the reader sees and stays; a link without one
    shows a note's name and is blanked."""
    if not any(c in text for c in "`~[<(:._\t") and "    " not in text:
        return text
    out: list[str] = []
    fence: str | None = None
    prev_blank = True  # the text starts as if after a blank line
    in_list = False  # the last non-blank line is a list item or its indented continuation
    code = False  # inside an indented code block
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is not None:
            out.append(_blank(line))
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end():].strip():
                fence = None
            continue
        if m:
            fence = m.group(1)
            out.append(_blank(line))
            continue
        blank = not line.strip()
        indented = line.startswith(("    ", "\t"))
        if not blank and indented and not _LIST_ITEM.match(line) and (code or (prev_blank and not in_list)):
            code = True  # an indented code block opens after a blank line that does not continue a list
            out.append(_blank(line))
            prev_blank = False
            continue
        if not blank:
            code = False
            in_list = bool(_LIST_ITEM.match(line)) or (in_list and line[:1] in " \t")
        prev_blank = blank
        out.append(line)
    masked = "\n".join(out)
    return _INLINE.sub(_mask_inline, masked) if any(c in masked for c in "`[<(:._") else masked


def _mask_inline(m: re.Match[str]) -> str:
    if m.group("wiki") is not None and m.group("alias"):
        a, b = m.span("alias")
        return _blank(m.string[m.start():a]) + m.group("alias") + _blank(m.string[b:m.end()])
    return _blank(m.group(0))


# --------------------------------------------------------------------------- extraction

def _sentences(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in _SENT_END.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans


#: Markdown that opens a line (list bullet or number, quote, heading) before a sentence's words.
_LINE_MARKS = re.compile(r"(?:(?:[-*+]|\d+[.)]|>+|#{1,6})[ \t]+)+")
#: An emphasis run (bold, italic, highlight, strike-through) at either end of a sentence.
_EMPHASIS_HEAD = re.compile(r"([*_=~]{1,3})\s*(?=\w)")
_EMPHASIS_TAIL = re.compile(r"(?<=\S)[*_=~]{1,3}$")


def _trim_sentence(text: str, s0: int, s1: int) -> tuple[int, str]:
    """Where the sentence in ``text[s0:s1]`` starts and its text, without surrounding spaces, the
    line's markdown (a bullet, «> », «## ») and an emphasis run the sentence does not close
    («**Даже тишина…» when the bold ends after the full stop): quotes read as prose."""
    raw = text[s0:s1]
    start = len(raw) - len(raw.lstrip())
    sent = raw.strip()
    m = _LINE_MARKS.match(sent)
    if m and m.end() < len(sent):
        start, sent = start + m.end(), sent[m.end():]
    m = _EMPHASIS_HEAD.match(sent)
    if m and m.group(1) not in sent[m.end():]:
        start, sent = start + m.end(), sent[m.end():]
    m = _EMPHASIS_TAIL.search(sent)
    if m and m.group() not in sent[: m.start()]:
        sent = sent[: m.start()]
    return s0 + start, sent


def extract(text: str, *, keep_names: bool = False) -> list[Candidate]:
    """Every candidate construction in ``text``, in text order. ``keep_names``: also phrases that
    hold a name (``_proper``), for finding a phrase someone gave (``figurative.locate``: scoring a
    phrase in its sentence, the training rows), where the phrase is already chosen."""
    out: list[Candidate] = []
    clean = mask_markup(text).replace("ё", "е").replace("Ё", "Е")  # same length: offsets stay valid
    for s0, s1 in _sentences(clean):
        hits = _sentence_hits(clean[s0:s1], keep_names)
        if not hits:
            continue
        sent_start, sent = _trim_sentence(text, s0, s1)
        for key, head, dep, cons, lang, label, a, b in hits:
            a, b = a + s0, b + s0
            out.append(Candidate(key, head, dep, cons, lang, text[a:b], label, a, b, sent, sent_start))
    return out


@lru_cache(maxsize=50_000)
def _sentence_hits(sentence: str, keep_names: bool = False) -> tuple[tuple, ...]:
    """Hits in one sentence, offsets relative to it (cached: chats repeat and quote sentences)."""
    toks = tokenize(sentence)
    if len(toks) < 2:
        return ()
    ru = sum(is_cyrillic(w) for w, _, _ in toks) * 2 >= len(toks)
    hits = _extract_ru(sentence, toks) if ru else _extract_en(sentence, toks)
    names = [(a, b) for k, (_, a, b) in enumerate(toks) if _proper(sentence, toks, k)]
    if names and not keep_names:  # a name inside the phrase ("feel of Obsidian", "API key"): not an image
        hits = [h for h in hits if not any(h[6] <= a and b <= h[7] for a, b in names)]
    return tuple(hits)


def _proper(text: str, toks: list[tuple[str, int, int]], k: int) -> bool:
    """True when ``toks[k]`` is a name, not a common word: an acronym ("API", «ИИ») or a capitalised
    word inside a clause ("the feel of Obsidian", «карта Москвы»; not the first word of a sentence,
    line, list item, quotation or clause after a colon). Images are built from common words: a
    product, place or person in a phrase makes a name or a term ("Obsidian forum"), not a figure."""
    w = toks[k][0]
    if len(w) > 1 and w.isupper():
        return True
    if not w[:1].isupper() or k == 0:
        return False
    gap = text[toks[k - 1][2] : toks[k][1]]
    return not gap.translate(_EMPHASIS).strip(" \t,")


#: Between two words, what does not start a clause: emphasis, a slash, link brackets and the blanks of
#: ``mask_markup`` ("in [[Page|Source mode]]": an aliased link's capitalised text is a page's name).
_EMPHASIS = str.maketrans("", "", "*_~/[]|\u2060")


def _joined(text: str, toks: list[tuple[str, int, int]], i: int, j: int) -> bool:
    """True when tokens i..j are separated by spaces only (no comma, dash or bracket between)."""
    return all(not text[toks[k][2] : toks[k + 1][1]].strip() for k in range(i, j))


def _extract_ru(text: str, toks: list[tuple[str, int, int]]) -> list[tuple]:
    hits = []
    n = len(toks)
    for i in range(n - 1):
        w = toks[i][0]
        if not is_cyrillic(w):
            continue
        # adjective/participle + agreeing noun
        adjs = _adjs(w)
        pair = None
        if adjs and i + 1 < n and is_cyrillic(toks[i + 1][0]) and _joined(text, toks, i, i + 1):
            nouns = _nouns(toks[i + 1][0])
            pair = next(((a, p) for a in adjs for p in nouns if _agree(a, p)), None)
            if pair and i + 2 < n and _joined(text, toks, i + 1, i + 2):
                # «устойчивые токенные паттерны»: the second word is an adjective of the third
                nxt_adj = _adjs(toks[i + 1][0])
                nxt_noun = _nouns(toks[i + 2][0])
                if any(_agree(b, q) for b in nxt_adj for q in nxt_noun):
                    pair = None
            if pair:
                a, p = pair
                label = (
                    f"{_nominative(w, a.lemma, a.pos, 'plur' if p.pltm else p.gender)} "
                    f"{_nominative(toks[i + 1][0], p.lemma, 'NOUN', None)}"
                )
                hits.append((f"{a.lemma} {p.lemma}", p.lemma, a.lemma, "adj", "ru", label, toks[i][1], toks[i + 1][2]))
        heads = [] if pair else _nouns(w)  # «старого маяка» is adj + noun, not «старое» + gen
        if heads and i and (toks[i - 1][0].lower(), w.lower()) in RU_COMPOUND_PREPS and _joined(text, toks, i - 1, i):
            heads = []  # «с помощью плагина»: a preposition, not the noun «помощь»
        if heads:
            # noun + [adjectives in the genitive…] + genitive noun
            j = i + 1
            while j < n and j - i <= 3 and not _nouns(toks[j][0]) and any(
                a.case == "gent" and a.pos in ("ADJF", "PRTF") for a in _parses(toks[j][0])
            ):
                j += 1
            if j < n and is_cyrillic(toks[j][0]) and _joined(text, toks, i, j):
                deps = [p for p in _nouns(toks[j][0]) if p.case == "gent"]
                if deps:
                    h, d = heads[0], deps[0]
                    if h.lemma != d.lemma:
                        label = f"{_nominative(w, h.lemma, 'NOUN', None)} {toks[j][0].lower()}"
                        hits.append((f"{h.lemma} {d.lemma}", h.lemma, d.lemma, "gen", "ru", label, toks[i][1], toks[j][2]))
            # noun + preposition + [numerals/adjectives…] + noun
            if i + 2 < n and toks[i + 1][0].lower() in RU_PREPS:
                prep = toks[i + 1][0].lower()
                j = i + 2
                while j < n and j - i <= 4 and not _nouns(toks[j][0]) and any(
                    p.pos in ("NUMR", "ADJF", "PRTF") for p in _parses(toks[j][0])
                ):
                    j += 1
                if (j < n and is_cyrillic(toks[j][0]) and _joined(text, toks, i, j)
                        and (prep, toks[i + 2][0].lower()) not in RU_COMPOUND_PREPS):  # not «имя в качестве»
                    cases = RU_PREP_CASES[prep]
                    deps = [p for p in _nouns(toks[j][0]) if p.case not in (None, "nomn")
                            and (cases is None or p.case in cases)]
                    if deps:
                        h, d = heads[0], deps[0]
                        label = f"{_nominative(w, h.lemma, 'NOUN', None)} {prep} {toks[j][0].lower()}"
                        hits.append((f"{h.lemma} {prep} {d.lemma}", h.lemma, d.lemma, "prep", "ru", label, toks[i][1], toks[j][2]))
    return hits


@lru_cache(maxsize=100_000)
def _en_lemma(word: str) -> str:
    """The noun lemma of an English word (every position we key is a noun's): "worlds" → "world",
    "meaning" → "meaning", "playing" → "playing" (simplemma, a lemmatiser without word classes,
    gave "mean", "playe")."""
    from lemminflect import getLemma

    w = word.lower()
    lemmas = getLemma(w, upos="NOUN")
    return lemmas[0].lower() if lemmas else w


def _en_content(w: str) -> bool:
    lw = w.lower()
    return lw.isascii() and lw.isalpha() and len(lw) > 2 and lw not in EN_STOP


def _extract_en(text: str, toks: list[tuple[str, int, int]]) -> list[tuple]:
    hits = []
    n = len(toks)
    for i in range(n - 1):
        w = toks[i][0]
        if not _en_content(w):
            continue
        nxt = toks[i + 1][0].lower()
        noun_prep = nxt in EN_NOUN_PREPS
        if (nxt == "of" or nxt in EN_PREPS or (noun_prep and _en_prep_head(toks, i))) and i + 2 < n:
            j = i + 2
            while j < n and toks[j][0].lower() in ("the", "a", "an", "two", "our", "its", "their", "his", "her", "my", "your"):
                j += 1
            while (not noun_prep and j + 1 < n and en_adjective(toks[j][0], after_determiner=True)
                   and _en_content(toks[j + 1][0])
                   and _en_adj_head(toks[j + 1][0].lower()) and _joined(text, toks, j, j + 1)):
                j += 1  # "seed of an old idea" is "seed of idea", as «семя старой идеи» is «семя идеи»
            if j < n and _en_content(toks[j][0]) and _joined(text, toks, i, j) and (
                    not noun_prep or (_en_prep_dep(toks[j][0].lower(), determiner=j > i + 2, to=nxt == "to")
                                      and not _en_modifier(toks, j))):
                h, d = _en_lemma(w), _en_lemma(toks[j][0])
                if h != d:
                    cons = "of" if nxt == "of" else "prep"
                    label = f"{w.lower()} {nxt} {toks[j][0].lower()}"
                    hits.append((f"{h} {nxt} {d}", h, d, cons, "en", label, toks[i][1], toks[j][2]))
        lw = w.lower()
        # a listed adjective or an adjective's ending: the lexicon's whole adjective class ("better
        # future", "true power") measured worse with the model (session 5: literal pairs listed)
        if ((lw in _EN_ADJ or _EN_ADJ_SUFFIX.search(lw)) and _en_content(toks[i + 1][0]) and _joined(text, toks, i, i + 1)
                and toks[i + 1][0].lower() not in _EN_ADJ and _en_adj_noun(lw, toks[i + 1][0].lower())
                and not _en_modifier(toks, i + 1, text)):  # "a new unique note": "unique" modifies "note"
            a, p = lw, _en_lemma(toks[i + 1][0])
            if not _EN_ADJ_SUFFIX.search(p) or len(p) <= 4:
                hits.append((f"{a} {p}", p, a, "adj", "en", f"{lw} {toks[i + 1][0].lower()}", toks[i][1], toks[i + 1][2]))
    return hits + _extract_en_nn(text, toks, {h[6] for h in hits if h[3] == "adj"})


def en_adjective(word: str, after_determiner: bool = False) -> bool:
    """True when ``word`` can be an adjective before a noun: an adjective in lemminflect's lexicon
    ("hollow", "bitter"), a past participle after a determiner ("a poisoned atmosphere"), or a word
    the lexicon does not know that ends like an adjective; not adverbs of time, particles and
    prepositions ("next", "out", "over"). Used for the modifier skipped in "seed of an old idea" (a
    participle there follows "of" or a determiner: "map of hidden meanings").
    The extractor's adjective + noun rule is narrower (a list and endings): with the whole class,
    the model listed literal pairs of the real exports ("better future"; session 5)."""
    lw = word.lower()
    if lw in _EN_ADJ:
        return True
    if lw in _EN_NN_STOP or lw in EN_STOP or lw in _EN_PREP_WORDS:  # "after running", "over time"
        return False
    pos = _en_pos(lw)
    if "ADJ" in pos:
        return True
    if not pos:
        return bool(_EN_ADJ_SUFFIX.search(lw))
    verb = pos.get("VERB")
    return after_determiner and lw.endswith(("ed", "en")) and verb is not None and verb[0] != lw


def _en_adj_noun(adj: str, noun: str) -> bool:
    """The adjective-suffix guess is an adjective and its next word a noun: "a file named X" is
    not «file» (-ile) + «name» (lemma of "named") — the key of the compound "file name" —, nor
    "file using", "file called". Words the lexicon does not know keep the guess."""
    pos = _en_pos(adj)
    return (adj in _EN_ADJ or not pos or "ADJ" in pos) and not _en_verb_form(noun)


def _en_adj_head(noun: str) -> bool:
    """True when ``noun`` (lower-cased) can be the noun an adjective modifies: a noun in the lexicon
    ("summary", "calm" too), or an unknown word that does not look like an adjective. Never an
    inflected verb alone: "a file named X", "file using" hold no phrase."""
    if noun in _EN_ADJ or noun in _EN_NN_STOP:
        return False
    pos = _en_pos(noun)
    if not pos:
        return not _EN_ADJ_SUFFIX.search(noun)
    return "NOUN" in pos


@lru_cache(maxsize=100_000)
def _en_pos(word: str) -> dict[str, tuple[str, ...]]:
    """Word classes a lower-cased English word can have (``NOUN``, ``VERB``, ``ADJ``, …) with its
    lemmas in each, from lemminflect's lexicon; empty for unknown words."""
    from lemminflect import getAllLemmas

    return dict(getAllLemmas(word))


def _en_prep_head(toks: list[tuple[str, int, int]], i: int) -> bool:
    """True when ``toks[i]`` can head "X to/in/for… Y": a noun here, not a verb ("it works in
    practice", "I listen to music", "looking for"), an adverb or an adjective-only word."""
    w = toks[i][0].lower()
    pos = _en_pos(w)
    if "NOUN" not in pos or w.endswith(("ly", "ing")) or w in _EN_NN_STOP or _en_verb_form(w):
        return False
    prev = toks[i - 1][0].lower() if i > 0 else None
    return not ("VERB" in pos and (prev is None or prev in _EN_VERB_CONTEXT))


def _en_prep_dep(w: str, *, determiner: bool, to: bool) -> bool:
    """True when ``w`` can be the noun after the preposition (after a bare "to", not a verb's base
    form: "time to go", "need to find")."""
    pos = _en_pos(w)
    if "NOUN" not in pos or w in _EN_NN_STOP or (not determiner and w in _EN_PREP_IDIOMS):
        return False
    return determiner or not to or "VERB" not in pos or w not in pos["VERB"]


#: Nouns that make adverbial idioms after a bare preposition ("in mind", "over time", "in
#: general", "for example", "from scratch"): never the dependent of an image.
_EN_PREP_IDIOMS = frozenset(
    ["time", "mind", "general", "particular", "fact", "order", "case", "terms", "addition", "place", "front",
     "detail", "advance", "total", "common", "top", "example", "instance", "date", "scratch", "board", "line",
     "person", "practice", "theory", "return", "turn", "touch", "charge", "control", "use", "contrast", "response",
     "part", "purpose", "sale", "progress", "hand", "demand", "depth", "summary", "short"])


def _en_modifier(toks: list[tuple[str, int, int]], j: int, text: str | None = None) -> bool:
    """True when ``toks[j]`` is an adjective-capable word before a noun ("in ethical ways", "a new
    unique note"): the noun it belongs to is further on (with ``text``: only when the two words
    are joined by spaces)."""
    return (j + 1 < len(toks) and "ADJ" in _en_pos(toks[j][0].lower())
            and _en_adj_head(toks[j + 1][0].lower()) and _en_content(toks[j + 1][0])
            and (text is None or _joined(text, toks, j, j + 1)))


#: Words after which a noun-or-verb word is a verb («I file reports», "to search engines").
_EN_VERB_CONTEXT = frozenset(
    ["i", "you", "we", "they", "he", "she", "it", "to", "will", "would", "can", "could", "should", "must", "may",
     "might", "do", "does", "did", "don't", "didn't", "doesn't", "please", "let's", "not", "never", "always"]
)
#: Adverbs of time and particles that the lexicon also lists as nouns ("matters today", "comes out").
_EN_NN_STOP = frozenset(
    ["today", "tomorrow", "yesterday", "tonight", "last", "next", "first", "out", "up", "down", "off", "back",
     "away", "ago", "home", "there", "here", "now", "yet", "else", "way", "while", "once", "times", "forward",
     "whether", "yourself", "myself", "himself", "herself", "itself", "ourselves", "themselves"]
)


def _en_nounish(w: str) -> bool:
    lw = w.lower()
    return (_en_content(w) and not lw.endswith("ly") and lw not in _EN_ADJ and lw not in _EN_NN_STOP
            and "NOUN" in _en_pos(lw))


@lru_cache(maxsize=50_000)
def _en_verb_form(w: str) -> bool:
    """True when ``w`` is an inflected verb that is not also the regular plural of a noun
    ("goes", "comes", "writes"; not "seeds", "bubbles")."""
    from lemminflect import getAllLemmas, getInflection

    lem = getAllLemmas(w)
    if "VERB" not in lem or lem["VERB"][0] == w:
        return False
    noun = lem.get("NOUN", (None,))[0]
    if noun is None or noun == w:
        return True
    plural = getInflection(noun, "NNS")
    return not plural or plural[0] != w


#: Words that follow a verb, not a plural noun: "the slow internet drives me crazy", "a sharp mind
#: helps me", "the tool points out errors".
#: Not "you", "it", "that", "this": they also start a relative clause ("the tools you use", "file types
#: this plugin reads").
_EN_AFTER_VERB = frozenset(["me", "him", "us", "them", "a", "an", "the", "my", "your", "his", "our", "their",
                            "its", "up", "out", "off", "away", "down"])


def _en_object_follows(text: str, toks: list[tuple[str, int, int]], k: int) -> bool:
    """True when the word right after ``toks[k]`` (spaces between) is an object pronoun, a determiner or
    a particle: ``toks[k]`` is then a verb ("drives me"), whatever the lexicon says it can be."""
    return (k + 1 < len(toks) and toks[k + 1][0].lower() in _EN_AFTER_VERB
            and _joined(text, toks, k, k + 1))


#: Between two tokens, what starts a new sentence or list item ("Notes:\n- Move vault…": "move" starts a clause).
_EN_CLAUSE_BREAK = re.compile(r"[.!?:;\n]")


def _extract_en_nn(text: str, toks: list[tuple[str, int, int]], adj_starts: set[int]) -> list[tuple]:
    """Noun–noun compounds: the last two words of a run of noun-capable words ("my attention
    compass spins" → "attention compass": a trailing inflected verb form is dropped). A gerund may
    start the run after a determiner or adjective ("a hiking compass"). A run starting a sentence,
    a line or a list item, or after a pronoun/"to"/a modal, must not start with a verb-capable word
    ("Open files", "- Move vault to…", "I file reports")."""
    hits = []
    n = len(toks)
    i = 0
    while i < n:
        w = toks[i][0]
        lw = w.lower()
        gerund = (lw.endswith("ing") and _en_content(w) and i > 0 and i + 1 < n
                  and _en_nounish(toks[i + 1][0]) and _joined(text, toks, i, i + 1)
                  and (toks[i - 1][0].lower() in _EN_DETS or "ADJ" in _en_pos(toks[i - 1][0].lower())))
        if not (gerund or _en_nounish(w)):
            i += 1
            continue
        j = i
        while j + 1 < n and _en_nounish(toks[j + 1][0]) and _joined(text, toks, j, j + 1):
            j += 1
        run = list(range(i, j + 1))
        i = j + 1
        last = toks[run[-1]][0].lower()
        verb = _en_pos(last).get("VERB")
        if len(run) >= 2 and (_en_verb_form(last) or (len(run) >= 3 and verb and verb[0] != last)
                              or (verb and verb[0] != last and _en_object_follows(text, toks, run[-1]))):
            run = run[:-1]
        if len(run) < 2:
            continue
        a, b = run[-2], run[-1]
        w1, w2 = toks[a][0].lower(), toks[b][0].lower()
        if toks[a][1] in adj_starts or "ADJ" in _en_pos(w1):  # "best results", "light bulb": adjective-capable
            continue
        prev = toks[a - 1][0].lower() if a > 0 and not _EN_CLAUSE_BREAK.search(text[toks[a - 1][2] : toks[a][1]]) else None
        if "VERB" in _en_pos(w1) and not w1.endswith("ing") and (prev is None or prev in _EN_VERB_CONTEXT):
            continue
        h, d = _en_lemma(w2), w1 if w1.endswith("ing") else _en_lemma(w1)  # "hiking", not "hike"
        if h != d:
            hits.append((f"{d} {h}", h, d, "nn", "en", f"{w1} {w2}", toks[a][1], toks[b][2]))
    return hits
