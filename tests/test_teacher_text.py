"""Item-text assembly, sentence spans and the small corpus readers of teacher/text.py."""

import gzip
import json
from pathlib import Path

import pytest

from aser_jax.data.errors import DataError
from aser_jax.teacher import text as T

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _gz(path: Path, content: str) -> Path:
  with gzip.open(path, "wt", encoding="utf-8") as f:
    f.write(content)
  return path


def test_assembly_order_and_budget():
  text = T.assemble_item_text("Red Lipstick", ["Beauty", "Makeup", " "], "A creamy formula.",
                              ["Love it.", "Too dry."], max_tokens=100)
  assert text.split("\n") == ["Red Lipstick", "Beauty > Makeup", "A creamy formula.", "Love it.",
                              "Too dry."]
  # 2 + 3 tokens used by title and path; the description is cut after 2 more; reviews dropped.
  cut = T.assemble_item_text("Red Lipstick", ["Beauty", "Makeup"], "A creamy formula.",
                             ["Love it."], max_tokens=7)
  assert cut == "Red Lipstick\nBeauty > Makeup\nA creamy"
  assert T.count_tokens(cut) == 7
  assert T.assemble_item_text() == ""


def test_truncate_tokens_keeps_original_characters():
  assert T.truncate_tokens("Très doux, 🌹 rose.", 3) == "Très doux,"
  assert T.truncate_tokens("abc", 0) == ""
  assert T.truncate_tokens("short", 10) == "short"


def test_source_examples():
  out = T.source_examples("i1", "Velvet Lipstick", ["Beauty"], "Matte finish.", ["Great!", "  "])
  assert [(e.source, e.text) for e in out] == [("title", "Velvet Lipstick\nBeauty"),
                                              ("description", "Matte finish."),
                                              ("review", "Great!")]
  with pytest.raises(ValueError, match="source"):
    T.TextExample("i", "question", "x")


def test_split_sentences_spans():
  text = "Smells great! Feels silky.\nNo residue"
  spans = T.split_sentences(text)
  assert [text[a:b] for a, b in spans] == ["Smells great!", "Feels silky.", "No residue"]
  assert T.split_sentences("") == []


def test_item_text_tsv(tmp_path):
  path = _gz(tmp_path / "items.tsv.gz",
             "item_id\tasin\ttitle\tbrand\tcategories\tprice\n"
             "1\tA1\tOPI Nail Lacquer, Red\tOPI\t'Beauty', 'Makeup', 'Nails'\t12.0\n"
             "2\tA2\tPlain Soap\tX\t'Beauty'\t3.0\n")
  out = list(T.read_item_text_tsv(path))
  assert [(e.item_id, e.source) for e in out] == [("1", "title"), ("2", "title")]
  assert out[0].text == "OPI Nail Lacquer, Red\nBeauty > Makeup > Nails"


def test_item_text_tsv_errors_name_file_and_line(tmp_path):
  bad_header = _gz(tmp_path / "h.tsv.gz", "item_id\tasin\tname\n1\tA\tx\n")
  with pytest.raises(DataError, match=r"h\.tsv\.gz:1 \[title\]"):
    list(T.read_item_text_tsv(bad_header))
  bad_row = _gz(tmp_path / "r.tsv.gz", "item_id\ttitle\tcategories\n1\tx\t'a'\n2\tonly two\n")
  with pytest.raises(DataError, match=r"r\.tsv\.gz:3: expected 3"):
    list(T.read_item_text_tsv(bad_row))
  with pytest.raises(DataError, match="file not found"):
    list(T.read_item_text_tsv(tmp_path / "missing.tsv.gz"))


def test_title_fragment_and_yelp(tmp_path):
  frag = _gz(tmp_path / "f.tsv.gz", "1\tB1\tpocoyo and friends\n2\tB2\tstar wars\n")
  assert [e.text for e in T.read_title_fragment_tsv(frag)] == ["pocoyo and friends", "star wars"]
  bad = _gz(tmp_path / "g.tsv.gz", "x\tB1\tpocoyo\n")
  with pytest.raises(DataError, match=r"g\.tsv\.gz:1 \[id\]"):
    list(T.read_title_fragment_tsv(bad))
  yelp = _gz(tmp_path / "y.jsonl.gz", json.dumps(
      {"item_id": 1, "name": "Sal's Pizza", "categories": "Pizza, Italian"}) + "\n")
  (e,) = T.read_yelp_items(yelp)
  assert (e.item_id, e.text) == ("1", "Sal's Pizza\nPizza > Italian")


def test_amazon_reviews_and_errors(tmp_path):
  lines = [{"asin": "A", "reviewText": "Smells nice."}, {"asin": "B"},
           {"asin": "C", "reviewText": "Ünïcödé ✓"}]
  path = _gz(tmp_path / "r.json.gz", "\n".join(json.dumps(x) for x in lines) + "\n")
  out = list(T.read_amazon_reviews(path))
  assert [(e.item_id, e.text) for e in out] == [("A", "Smells nice."), ("B", ""), ("C", "Ünïcödé ✓")]
  broken = _gz(tmp_path / "b.json.gz", '{"asin": "A", "reviewText": "x"}\n{oops\n')
  with pytest.raises(DataError, match=r"b\.json\.gz:2"):
    list(T.read_amazon_reviews(broken))
  no_asin = _gz(tmp_path / "n.json.gz", '{"reviewText": "x"}\n')
  with pytest.raises(DataError, match=r"n\.json\.gz:1 \[asin\]"):
    list(T.read_amazon_reviews(no_asin))


def test_review_csv_with_multiline_field_and_qa(tmp_path):
  csv_path = _gz(tmp_path / "c.csv.gz", 'ProductId,Text\nP1,"Crunchy,\nsalty"\nP2,Sweet\n')
  out = list(T.read_review_csv(csv_path, "ProductId", "Text"))
  assert [(e.item_id, e.text) for e in out] == [("P1", "Crunchy,\nsalty"), ("P2", "Sweet")]
  with pytest.raises(DataError, match=r"\[review\]"):
    list(T.read_review_csv(csv_path, "ProductId", "review"))
  qa = _gz(tmp_path / "q.json.gz", "{'asin': 'G1', 'question': 'Is it loud?', 'answer': 'No'}\n")
  (e,) = T.read_video_games_qa(qa)
  assert (e.item_id, e.text) == ("G1", "Is it loud?\nNo")


def test_unknown_preset():
  with pytest.raises(ValueError, match="unknown data preset"):
    T.read_preset("nope", Path("."))


def test_synthetic_corpus_is_labelled_and_varied():
  ex = T.synthetic_examples()
  assert len(ex) >= 30 and all(e.item_id.startswith("syn-") for e in ex)
  assert {"title", "review"} <= {e.source for e in ex}
  assert any(e.text == "" for e in ex) and any(not e.text.isascii() for e in ex)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not present at {SHARED_DATA}")
def test_real_presets_read():
  beauty = list(T.read_preset("beauty", SHARED_DATA))
  assert len(beauty) == 12101 and beauty[0].item_id == "1"
  assert beauty[0].text.startswith("OPI Nail Lacquer") and "Beauty > Makeup" in beauty[0].text
  reviews = list(T.read_preset("all_beauty_2018", SHARED_DATA))
  assert len(reviews) == 5269 and all(e.source == "review" for e in reviews)
  for name in ("toys", "yelp", "fine_food", "foodcom", "video_games_qa"):
    first = next(iter(T.read_preset(name, SHARED_DATA)))
    assert first.item_id and first.text
