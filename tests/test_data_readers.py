import gzip

import numpy as np
import pytest

from aser_jax.data.errors import DataError
from aser_jax.data.items import ItemTable, read_item_attributes, read_item_text, read_recbole_item, write_recbole_item
from aser_jax.data.presets import load_sequences, resolve_data_file
from aser_jax.data.sequences import (SequenceData, read_recbole_inter, read_sequences, write_recbole_inter,
                                     write_sequences)


def _write(path, text):
  if str(path).endswith(".gz"):
    with gzip.open(path, "wt") as f:
      f.write(text)
  else:
    path.write_text(text)
  return path


@pytest.mark.parametrize("name", ["d.txt", "d.txt.gz"])
def test_txt_roundtrip(tmp_path, name):
  data = SequenceData(np.array([1, 2]), (np.array([3, 1, 2], np.int32), np.array([4, 4, 5, 1], np.int32)), 5)
  write_sequences(data, tmp_path / name)
  back = read_sequences(tmp_path / name)
  assert back.num_items == 5 and back.num_users == 2
  assert [s.tolist() for s in back.sequences] == [[3, 1, 2], [4, 4, 5, 1]]
  assert back.user_ids.tolist() == [1, 2]


@pytest.mark.parametrize("text, line, field, problem", [
    ("1 1 2 3\n2 4 x 6\n", 2, "item 2", "expected an integer id, got 'x'"),
    ("1 1 2 3\n2 4 0 6\n", 2, "item 2", "item id 0 is not a valid item"),
    ("1 1 2 3\n2 4 -3 6\n", 2, "item 2", "item id -3"),
    ("u1 1 2 3\n", 1, "user_id", "expected an integer id, got 'u1'"),
    ("1 1 2 3\n7\n", 2, "items", "user 7 has no items"),
    ("1 1 2 3\n1 4 5 6\n", 2, "user_id", "already appeared on line 1"),
])
def test_malformed_lines_name_file_line_and_field(tmp_path, text, line, field, problem):
  path = _write(tmp_path / "bad.txt", text)
  with pytest.raises(DataError) as err:
    read_sequences(path)
  assert err.value.line == line and err.value.field == field
  assert problem in str(err.value) and f"bad.txt:{line}" in str(err.value)


def test_blank_lines_and_short_users_are_counted_not_silently_dropped(tmp_path):
  path = _write(tmp_path / "d.txt", "1 1 2 3\n\n2 4 5\n3 6 7 8 9\n   \n")
  data = read_sequences(path)
  assert data.num_users == 2
  assert data.report.short_users == 1 and data.report.blank_lines == 2
  assert "1 users with < 3 items" in data.report.summary()


def test_truncated_gzip_is_a_clear_error(tmp_path):
  full = _write(tmp_path / "full.txt.gz", "".join(f"{u} 1 2 3 4 5 6 7 8\n" for u in range(1, 3000)))
  raw = full.read_bytes()
  cut = tmp_path / "cut.txt.gz"
  cut.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(DataError, match=r"cut\.txt\.gz:\d+: corrupt or truncated gzip"):
    read_sequences(cut)


def test_recbole_inter_roundtrip_orders_by_timestamp(tmp_path):
  path = _write(tmp_path / "x.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
                "a\tp\t3\na\tq\t1\na\tr\t2\nb\tq\t5\nb\tp\t6\nb\ts\t7\nc\tp\t1\n")
  data, users, items = read_recbole_inter(path)
  assert users == {"a": 1, "b": 2}  # c has one item: skipped and counted
  assert data.report.short_users == 1
  assert items == {"p": 1, "q": 2, "r": 3, "s": 4}
  assert [s.tolist() for s in data.sequences] == [[2, 3, 1], [2, 1, 4]]
  write_recbole_inter(data, tmp_path / "y.inter")
  again, _, _ = read_recbole_inter(tmp_path / "y.inter")
  # tokens are re-mapped in order of first appearance: "2"->1, "3"->2, "1"->3, "4"->4
  assert [s.tolist() for s in again.sequences] == [[1, 2, 3], [1, 3, 4]]


def test_recbole_inter_bad_timestamp(tmp_path):
  path = _write(tmp_path / "x.inter", "user_id:token\titem_id:token\ttimestamp:float\na\tp\tsoon\n")
  with pytest.raises(DataError, match=r"x\.inter:2 \[timestamp\]"):
    read_recbole_inter(path)


def test_recbole_item_quoted_tab_and_newline(tmp_path):
  path = _write(tmp_path / "x.item", 'item_id:token\ttitle:token\tcats:token_seq\tprice:float\n'
                'A1\t"Cream \n Vanilla"\tBeauty Skin\t11.5\n'
                'A2\t"Left \t right"\tBeauty\t\n')
  table = read_recbole_item(path)
  assert table.rows["A1"]["title"] == "Cream \n Vanilla"
  assert table.rows["A1"]["cats"] == ["Beauty", "Skin"]
  assert table.rows["A2"]["title"] == "Left \t right" and np.isnan(table.rows["A2"]["price"])
  write_recbole_item(table, tmp_path / "y.item", {"item_id": "token", "title": "token", "cats": "token_seq",
                                                  "price": "float"})
  assert read_recbole_item(tmp_path / "y.item").rows["A2"]["title"] == "Left \t right"


def test_recbole_item_bad_float_names_field(tmp_path):
  path = _write(tmp_path / "x.item", "item_id:token\tprice:float\nA1\tcheap\n")
  with pytest.raises(DataError, match=r"x\.item:2 \[price\]: 'cheap' is not a float"):
    read_recbole_item(path)


def test_item_text_formats(tmp_path):
  tsv = _write(tmp_path / "t.tsv", "item_id\ttitle\tcategories\n1\tRed lipstick\t'Beauty', 'Makeup'\n")
  assert read_item_text(tsv).text(1) == "Red lipstick\nBeauty, Makeup"
  frag = _write(tmp_path / "f.tsv.gz", "1\tB00X\tsmall red car\n2\tB00Y\tblue ball\n")
  assert read_item_text(frag).rows[2]["title"] == "blue ball"
  js = _write(tmp_path / "j.jsonl", '{"item_id": 3, "name": "Cafe", "categories": "Coffee"}\n{"name": "x"}\n')
  with pytest.raises(DataError, match=r"j\.jsonl:2 \[item_id\]"):
    read_item_text(js)


def test_item_text_join_skips_empty_fields():
  t = ItemTable("item_id", {1: {"title": "A", "brand": "", "categories": ["x", "y"]}}, ("title", "brand", "categories"))
  assert t.text(1) == "A\nx, y"
  assert t.text(99) == ""


def test_presets_find_gz_twin(tmp_path):
  _write(tmp_path / "Beauty.txt.gz", "1 1 2 3\n")
  assert resolve_data_file("beauty", tmp_path).name == "Beauty.txt.gz"
  with pytest.raises(FileNotFoundError, match="Sports_and_Outdoors.txt"):
    resolve_data_file("sports", tmp_path)
  with pytest.raises(FileNotFoundError, match="neither a preset"):
    resolve_data_file("nope.txt", None)


def test_synthetic_default_is_deterministic_and_labelled():
  a, b = load_sequences("synthetic"), load_sequences("synthetic")
  assert a.synthetic and a.name == "synthetic"
  assert all(np.array_equal(x, y) for x, y in zip(a.sequences, b.sequences))


def test_real_benchmarks_counts(shared_data):
  expected = {"amazon2014/beauty/Beauty.txt.gz": (22363, 12101, 198502),
              "amazon2014/toys/Toys_and_Games.txt.gz": (19412, 11924, 167597),
              "amazon2014/grocery/Grocery_and_Gourmet_Food.txt.gz": (14681, 8713, 151254),
              "yelp/Yelp.txt.gz": (30431, 20033, 316354)}
  for rel, (users, items, inter) in expected.items():
    data = read_sequences(shared_data / rel)
    assert (data.num_users, data.num_items, data.num_interactions) == (users, items, inter), rel


def test_real_item_tables(shared_data):
  beauty = read_recbole_item(shared_data / "amazon2014/beauty/Amazon_Beauty_item_meta_recbole.tsv.gz", seq_sep=", ")
  assert len(beauty) == 12101
  assert "\n" in beauty.rows["B0001ZYL3Q"]["title"]
  text = read_item_text(shared_data / "amazon2014/beauty/item_text_iclrec_ids.tsv.gz")
  assert len(text) == 12101 and set(text.rows) == set(range(1, 12102))
  yelp = read_item_text(shared_data / "yelp/item_text_letter.jsonl.gz")
  assert len(yelp) == 20033
  attrs = read_item_attributes(shared_data / "amazon2014/beauty/Beauty_item2attributes_s3rec.json.gz")
  assert len(attrs) == 12101
