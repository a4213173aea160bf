"""Figurativeness ranking: recurrence times cheap literalness cues, one score per key/metaphor.

It is a ranking, not a gate (metaphor-methods.md §0): every candidate stays queryable.

- **Recurrence** counts *distinct sentences*: a sentence repeated verbatim (the assistant quoting
  the user, a pasted paragraph, a template) is one use, and conversations/months are counted
  over the first use of each distinct sentence. Without this, boilerplate wins.
- **Technicality**: how many of the two components are technical vocabulary (built-in list
  below plus ``technical = [...]`` in ``tropegraph.toml``). Both technical («нейронная сеть»,
  «файл журнала») = literal term; one («язык токенов») = a possible image; none = neutral.
- **Stoplist**: known literal collocations (built-in + ``stoplist = [...]``) are pushed down ×0.1.
- **Pair similarity** of head and dependent (e5 cosine) is a weak cue on e5 (cosines are
  compressed into 0.83–0.88 on the dev vault); it only breaks near-ties.
- **Languages**: an image the author carries into another language gets a bonus.

Measured on the dev vault: e5 head↔dependent cosine, phrase↔conversation-centroid distance,
cross-conversation spread and masked-context diversity did *not* separate the planted images
from the literal distractors (all within ±0.03); distinct-sentence recurrence plus technicality
did. See the report in the issue thread.
"""
from __future__ import annotations

import math

#: Lemmas of technical (IT / ML) vocabulary. A collocation of two of them is a literal term.
TECHNICAL: frozenset[str] = frozenset(
    """
        данные база файл журнал лог конфигурация конфиг сервер код функция скрипт библиотека версия
        импорт модуль пакет класс метод переменная параметр аргумент запрос ответ таблица индекс
        вектор матрица тензор слой вес градиент батч эпоха выборка датасет модель сеть нейронный
        нейросеть языковой обучающий тестовый валидационный обучение дообучение токен токенизатор
        эмбеддинг архитектура трансформер процессор память диск кэш кеш поток процесс ошибка
        исключение тест отладчик компилятор интерпретатор репозиторий коммит ветка сборка
        программирование программа алгоритм интерфейс api json yaml промпт адаптер контекст
        регулярный выражение цикл генератор итератор строка кодировка сервис контейнер data database
        file log config configuration server code function script library version module package
        class method variable parameter query table index vector matrix tensor layer weight gradient
        batch epoch dataset model network neural token tokenizer embedding architecture transformer
        processor memory cache thread process error exception test debugger compiler repository
        commit branch build programming program algorithm interface prompt adapter context training
        learning machine size loss rate
    """.split()  # noqa: SIM905
)

#: Literal collocations that recur in technical chats, as written (matched by lemma key).
DEFAULT_STOPLIST: tuple[str, ...] = (
    "нейронная сеть", "языковая модель", "большая языковая модель", "обучающая выборка",
    "тестовая выборка", "база данных", "файл конфигурации", "файл журнала", "размер батча",
    "машинное обучение", "глубокое обучение", "функция потерь", "скорость обучения",
    "языковой модель", "язык программирования", "регулярное выражение", "командная строка",
    "исходный код", "neural network", "language model", "training data", "machine learning",
    "batch size", "learning rate", "loss function", "log file", "config file",
)

W_TECH = 0.35
W_PAIR = 0.1
STOP_FACTOR = 0.1
SINGLE_CONVERSATION_FACTOR = 0.5
LANG_BONUS = 0.5


def technicality(head: str, dep: str, technical: frozenset[str] = TECHNICAL) -> float:
    """0, 0.5 or 1: the share of the two components that are technical words."""
    return ((head.lower() in technical) + (dep.lower() in technical)) / 2


def recurrence(sentences: int, conversations: int, months: int, languages: int = 1) -> float:
    """Log-scaled recurrence over distinct sentences, fresh conversations and months."""
    r = math.log2(1 + sentences) + 0.5 * math.log2(max(conversations, 1)) + 0.25 * math.log2(max(months, 1))
    if languages > 1:
        r += LANG_BONUS
    if conversations < 2:
        r *= SINGLE_CONVERSATION_FACTOR
    return r


def figurativeness(technical: float, pair_sim: float | None, stoplisted: bool) -> float:
    """In (0, 1]: how likely the construction is an image rather than a literal term."""
    f = 1.0 - W_TECH * technical
    if pair_sim is not None:  # e5 cosine of head and dependent; 0.80–0.95 in practice
        f *= 1.0 - W_PAIR * min(max((pair_sim - 0.80) / 0.15, 0.0), 1.0)
    if stoplisted:
        f *= STOP_FACTOR
    return f


def score(sentences: int, conversations: int, months: int, technical: float, pair_sim: float | None,
          stoplisted: bool, languages: int = 1) -> float:
    return round(recurrence(sentences, conversations, months, languages) * figurativeness(technical, pair_sim, stoplisted), 4)
