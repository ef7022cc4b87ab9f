"""Teacher input texts: small readers for the shared corpora and item-text assembly.

ASER_SPEC §1: an item's text is its title, category path and description first, then its
review texts, joined with newlines. ASER_SPEC §2 supervises the student per example with
a source in {review, title, description}, so texts are also emitted per source.
Readers fail with a DataError naming the file, the line and the field.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from aser_jax.data.errors import DataError

SOURCES = ("review", "title", "description")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclasses.dataclass(frozen=True)
class TextExample:
  """One text to annotate: the item it belongs to, its source and the text itself."""

  item_id: str
  source: str
  text: str

  def __post_init__(self):
    if self.source not in SOURCES:
      raise ValueError(f"source {self.source!r} not in {SOURCES}")


def count_tokens(text: str) -> int:
  """Approximate token count: words and single punctuation marks."""
  return len(_TOKEN_RE.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
  """Cuts text after its first max_tokens tokens (at the end of the last kept token)."""
  if max_tokens <= 0:
    return ""
  for index, match in enumerate(_TOKEN_RE.finditer(text)):
    if index == max_tokens - 1:
      return text[:match.end()]
  return text


def assemble_item_text(title: str = "", categories: Sequence[str] = (), description: str = "",
                       reviews: Sequence[str] = (), max_tokens: int = 512) -> str:
  """ASER_SPEC §1 item text: title, category path, description, then reviews, one per line.

  Pieces are added in that order until max_tokens is spent; the piece that crosses the
  budget is cut at a token boundary and later pieces are left out.
  """
  pieces = [title.strip(), " > ".join(c.strip() for c in categories if c.strip()),
            description.strip(), *(r.strip() for r in reviews)]
  lines, budget = [], max_tokens
  for piece in pieces:
    if not piece:
      continue
    if budget <= 0:
      break
    cut = truncate_tokens(piece, budget)
    lines.append(cut)
    budget -= count_tokens(cut)
  return "\n".join(lines)


def source_examples(item_id: str, title: str = "", categories: Sequence[str] = (),
                    description: str = "", reviews: Sequence[str] = (),
                    max_tokens: int = 256) -> list[TextExample]:
  """Per-source Stage-2 examples of one item: title (+ category path), description, reviews."""
  out = []
  head = assemble_item_text(title, categories, max_tokens=max_tokens)
  if head:
    out.append(TextExample(item_id, "title", head))
  if description.strip():
    out.append(TextExample(item_id, "description", truncate_tokens(description.strip(), max_tokens)))
  for review in reviews:
    if review.strip():
      out.append(TextExample(item_id, "review", truncate_tokens(review.strip(), max_tokens)))
  return out


_SENTENCE_RE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)|[.!?]+", re.MULTILINE)


def split_sentences(text: str) -> list[tuple[int, int]]:
  """Character ranges of the sentences of text (split after . ! ? and at newlines)."""
  spans = []
  for match in _SENTENCE_RE.finditer(text):
    start, end = match.start(), match.end()
    while start < end and text[start].isspace():
      start += 1
    while end > start and text[end - 1].isspace():
      end -= 1
    if end > start:
      spans.append((start, end))
  return spans


def _open_text(path: Path) -> io.TextIOBase:
  if not path.exists():
    raise DataError(path, None, "file not found")
  if path.suffix == ".gz":
    return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
  return open(path, encoding="utf-8", newline="")


def _split_categories(raw: str) -> list[str]:
  """Parses "'Beauty', 'Makeup', 'Nails'" (a quoted list) into its names."""
  names = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", raw)
  parsed = [a or b for a, b in names]
  return parsed if parsed else [c.strip() for c in raw.split(",") if c.strip()]


def read_item_text_tsv(path: Path) -> Iterator[TextExample]:
  """Reads an item-text TSV with header item_id, asin, title, brand, categories, ...

  Each item yields one "title" example: title, then its category path.
  """
  with _open_text(path) as handle:
    header = handle.readline().rstrip("\r\n").split("\t")
    for name in ("item_id", "title", "categories"):
      if name not in header:
        raise DataError(path, 1, f"header lacks column {name!r} (has {header})", field=name)
    col = {name: header.index(name) for name in header}
    for line_no, line in enumerate(handle, start=2):
      row = line.rstrip("\r\n").split("\t")
      if len(row) != len(header):
        raise DataError(path, line_no, f"expected {len(header)} tab-separated fields, got {len(row)}")
      item_id = row[col["item_id"]].strip()
      if not item_id:
        raise DataError(path, line_no, "empty item id", field="item_id")
      text = assemble_item_text(row[col["title"]], _split_categories(row[col["categories"]]))
      yield TextExample(item_id, "title", text)


def read_title_fragment_tsv(path: Path) -> Iterator[TextExample]:
  """Reads a headerless `id \\t ASIN \\t title fragment` TSV as "title" examples."""
  with _open_text(path) as handle:
    for line_no, line in enumerate(handle, start=1):
      row = line.rstrip("\r\n").split("\t")
      if len(row) != 3:
        raise DataError(path, line_no, f"expected 3 tab-separated fields, got {len(row)}")
      if not row[0].strip().isdigit():
        raise DataError(path, line_no, f"item id {row[0]!r} is not an integer", field="id")
      yield TextExample(row[0].strip(), "title", row[2].strip())


def _json_lines(path: Path, literal: bool = False) -> Iterator[tuple[int, dict]]:
  with _open_text(path) as handle:
    for line_no, line in enumerate(handle, start=1):
      if not line.strip():
        continue
      try:
        obj = ast.literal_eval(line) if literal else json.loads(line)
      except (ValueError, SyntaxError) as err:
        raise DataError(path, line_no, f"not a valid record: {err}") from None
      if not isinstance(obj, dict):
        raise DataError(path, line_no, "record is not an object")
      yield line_no, obj


def _require(path: Path, line_no: int, obj: dict, field: str):
  if field not in obj:
    raise DataError(path, line_no, "missing field", field=field)
  return obj[field]


def read_yelp_items(path: Path) -> Iterator[TextExample]:
  """Reads Yelp business JSON lines (item_id, name, categories) as "title" examples."""
  for line_no, obj in _json_lines(path):
    item_id = _require(path, line_no, obj, "item_id")
    name = _require(path, line_no, obj, "name") or ""
    categories = (obj.get("categories") or "").split(",")
    yield TextExample(str(item_id), "title", assemble_item_text(name, categories))


def read_amazon_reviews(path: Path) -> Iterator[TextExample]:
  """Reads Amazon 2018 review JSON lines (asin, reviewText) as "review" examples.

  A review without reviewText yields an empty text: it is kept so that counts match the file.
  """
  for line_no, obj in _json_lines(path):
    asin = _require(path, line_no, obj, "asin")
    text = obj.get("reviewText") or ""
    if not isinstance(text, str):
      raise DataError(path, line_no, "not a string", field="reviewText")
    yield TextExample(str(asin), "review", text)


def read_video_games_qa(path: Path) -> Iterator[TextExample]:
  """Reads Amazon Q&A (Python dict literals); question and answer form one "review" text."""
  for line_no, obj in _json_lines(path, literal=True):
    asin = _require(path, line_no, obj, "asin")
    question = _require(path, line_no, obj, "question") or ""
    answer = obj.get("answer") or ""
    yield TextExample(str(asin), "review", f"{question.strip()}\n{answer.strip()}".strip())


def read_review_csv(path: Path, item_field: str, text_field: str) -> Iterator[TextExample]:
  """Reads a review CSV (quoted multi-line fields allowed) as "review" examples."""
  with _open_text(path) as handle:
    reader = csv.DictReader(handle)
    for name in (item_field, text_field):
      if reader.fieldnames is None or name not in reader.fieldnames:
        raise DataError(path, 1, f"header lacks column {name!r}", field=name)
    for row in reader:
      if row.get(item_field) in (None, ""):
        raise DataError(path, reader.line_num, "empty item id", field=item_field)
      yield TextExample(row[item_field].strip(), "review", row[text_field] or "")


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named corpus: its path under the data dir and how to read it."""

  name: str
  relpath: str
  kind: str


PRESETS = {
    p.name: p for p in (
        Preset("beauty", "amazon2014/beauty/item_text_iclrec_ids.tsv.gz", "item_text_tsv"),
        Preset("toys", "amazon2014/toys/item_title_fragment_idgenrec.tsv.gz", "title_fragment"),
        Preset("yelp", "yelp/item_text_letter.jsonl.gz", "yelp"),
        Preset("all_beauty_2018", "text/all_beauty_2018/All_Beauty_5.json.gz", "amazon_reviews"),
        Preset("fine_food", "text/fine_food_1k/fine_food_reviews_1k_openai_cookbook_copy.csv.gz",
               "fine_food"),
        Preset("foodcom", "text/foodcom/foodcom_RAW_interactions_subset_zizgao.csv.gz", "foodcom"),
        Preset("video_games_qa", "text/video_games_qa/qa_Video_Games.json.gz", "qa"),
    )
}


def read_preset(name: str, data_dir: Path) -> Iterator[TextExample]:
  """Yields the texts of preset `name` read from data_dir."""
  if name not in PRESETS:
    raise ValueError(f"unknown data preset {name!r}; choose one of {sorted(PRESETS)}")
  preset = PRESETS[name]
  path = Path(data_dir) / preset.relpath
  readers = {
      "item_text_tsv": read_item_text_tsv,
      "title_fragment": read_title_fragment_tsv,
      "yelp": read_yelp_items,
      "amazon_reviews": read_amazon_reviews,
      "fine_food": lambda p: read_review_csv(p, "ProductId", "Text"),
      "foodcom": lambda p: read_review_csv(p, "recipe_id", "review"),
      "qa": read_video_games_qa,
  }
  return readers[preset.kind](path)


# Sentences written for this project (not from any corpus) so the binary and its tests run
# without ../shared/data. Item ids name the synthetic product each sentence talks about.
SYNTHETIC_TEXTS = (
    ("syn-lipstick", "title", "Velvet Matte Lipstick, Deep Burgundy\nBeauty > Makeup > Lips"),
    ("syn-lipstick", "review", "The burgundy shade is gorgeous and the matte finish lasts all day."),
    ("syn-lipstick", "review", "It feels a little dry on my lips but the color is rich."),
    ("syn-lotion", "title", "Fragrance-Free Daily Body Lotion\nBeauty > Skin Care > Body"),
    ("syn-lotion", "review", "This lotion is fragrance-free, which my sensitive skin loves."),
    ("syn-lotion", "review", "Lightweight and non-greasy, it absorbs quickly and leaves skin soft."),
    ("syn-lotion", "review", "Shipping took two weeks and the box was dented."),
    ("syn-candle", "title", "Vanilla Bean Soy Candle in Frosted Glass Jar"),
    ("syn-candle", "review", "Smells like warm vanilla and fills the whole room."),
    ("syn-candle", "review", "The scent is too sweet for me, almost sickly."),
    ("syn-candle", "review", "There is no smell at all once it is lit, very disappointing."),
    ("syn-coffee", "title", "Dark Roast Whole Bean Coffee\nGrocery > Coffee"),
    ("syn-coffee", "review", "Bold, smoky flavor with a bitter aftertaste."),
    ("syn-coffee", "review", "Tastes nutty and smooth, not acidic at all."),
    ("syn-coffee", "review", "I buy it every month for the office."),
    ("syn-speaker", "title", "Compact Bluetooth Speaker with Glossy White Shell"),
    ("syn-speaker", "review", "Crisp sound and deep bass for such a small speaker."),
    ("syn-speaker", "review", "The fan makes a loud buzzing noise that drives me crazy."),
    ("syn-speaker", "review", "The glossy white shell shows every fingerprint."),
    ("syn-mat", "title", "Non-Slip Yoga Mat, Ocean Blue, Marbled Pattern"),
    ("syn-mat", "review", "The surface is grippy and slightly sticky, with a soft cushioned feel."),
    ("syn-mat", "review", "Love the marbled pattern and the bright blue color."),
    ("syn-mat", "review", "It had a strong chemical smell for the first week."),
    ("syn-serum", "title", "Hydrating Face Serum, Clear Gel, Unscented"),
    ("syn-serum", "review", "The gel is clear and odorless, and it feels silky on the skin."),
    ("syn-serum", "review", "Arrived on time. Works as described."),
    ("syn-polish", "title", "Holographic Glitter Nail Polish, Silver"),
    ("syn-polish", "review", "Sparkly silver with a holographic shimmer that catches the light."),
    ("syn-polish", "review", "It chips after two days."),
    ("syn-tea", "title", "Peppermint Herbal Tea, Caffeine Free"),
    ("syn-tea", "review", "Refreshing minty taste and a lovely fresh aroma."),
    ("syn-tea", "review", "Not bitter, and there is no aftertaste."),
    ("syn-toy", "title", "Round Wooden Rattle, Pastel Striped"),
    ("syn-toy", "review", "The rattle makes a gentle soft sound my baby loves."),
    ("syn-toy", "review", "Smooth wood, no rough edges, with cute pastel stripes."),
    ("syn-empty", "review", ""),
    ("syn-unicode", "review", "Le parfum sent la rose, très doux 🌹 and the pink bottle is pretty."),
)


def synthetic_examples() -> list[TextExample]:
  """The embedded synthetic corpus (labelled synthetic: our own sentences)."""
  return [TextExample(i, s, t) for i, s, t in SYNTHETIC_TEXTS]
