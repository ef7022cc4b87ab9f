"""A model-free sensory teacher: a curated lexicon with cue words, negation and polarity.

ASER_SPEC §1 records (attribute, value, evidence, polarity, negated, confidence) are built
clause by clause:

1. cue words name an attribute (a "trigger": smell, taste, texture, feel, colour, sound...);
2. descriptors carry a value: quality words whose attribute is fixed ("silky", "matte",
   "burgundy"), quality words that need a trigger to pick the attribute ("soft", "sweet",
   "vanilla"), and evaluative words that only mean something next to a trigger ("great");
3. a trigger takes the descriptors that modify it ("fresh mint flavor"), follow it through
   a copula ("the smell is terrible") or a sensory verb ("smells so good", "tastes like X");
4. unambiguous descriptors with no trigger stand alone ("shiny", "delicious");
5. negation ("no smell", "odorless", "fragrance-free", "doesn't leave a residue") marks a
   record as negated; a negated evaluation ("not good") flips polarity instead, and a
   hedge ("not too strong") is kept as a value;
6. polarity comes from the descriptor's valence, else from sentiment cues in the clause;
   confidence from how strong the cue is (construction > standalone word).

Evidence is always the exact character span of the text the record was read from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from aser_jax.teacher.schema import ATTRIBUTE_TO_FACET, SensoryRecord

POS, NEG, NEU = 1, -1, 0
_ANY = "*"  # an evaluative descriptor: attribute decided by its trigger


def _entries(words: str, attrs: tuple[str, ...], valence: int = NEU) -> dict:
  return {w: (attrs, valence) for w in words.split()}


_COLOR_WORDS = (
    "red pink burgundy maroon coral peach nude beige brown black white gray grey silver gold "
    "golden blue navy teal turquoise green olive yellow orange purple violet lilac plum berry "
    "ivory bronze copper magenta fuchsia crimson scarlet cherry silvery blonde auburn brassy "
    "mauve taupe khaki champagne rosy reddish pinkish brownish yellowish greenish bluish "
    "purplish orangey cobalt emerald ruby sapphire charcoal espresso mahogany chestnut")
# Colour words that are rarely anything else stand alone; the rest need a colour cue.
_STRONG_COLORS = set(
    "burgundy maroon fuchsia magenta crimson scarlet teal turquoise beige mauve taupe lilac "
    "reddish pinkish brownish yellowish greenish bluish purplish silvery brassy auburn".split())
# Words that modify a colour ("light pink") and are kept in its value.
_COLOR_MODIFIERS = set("light dark pale deep bright hot pastel neon soft muted vivid rich "
                       "baby dusty warm cool true jet pure off ash platinum icy".split())
# Colour word + next word that names a thing, not a colour ("green tea", "black pepper").
_COLOR_COLLOCATIONS = set(
    "tea pepper peppers rice sugar wine beans bean juice friday standard tree card onion onions "
    "chili chilies olives olive apple apples grapes grape belt house peas lentils vinegar "
    "heads head market label cross coffee chocolate truffle truffles tip tips".split())

DESCRIPTORS: dict[str, tuple[tuple[str, ...], int]] = {
    **_entries(_COLOR_WORDS, ("color",)),
    # glossiness / finish / brightness / transparency
    **_entries("shiny glossy lustrous shimmery", ("glossiness",), POS),
    **_entries("shine sheen gloss luster lustre", ("glossiness",)),
    **_entries("matte satin dewy metallic frosted frosty pearlescent pearly iridescent "
               "holographic glittery sparkly shimmering", ("finish",)),
    **_entries("shimmer glitter sparkle", ("finish",)),
    **_entries("vibrant vivid", ("brightness", "color"), POS),
    **_entries("faded dim", ("brightness",), NEG),
    **_entries("luminous radiant glowing", ("brightness",), POS),
    **_entries("transparent translucent see-through", ("transparency",)),
    **_entries("opaque sheer cloudy", ("transparency",)),
    # pattern / shape / design
    **_entries("striped stripes stripy polka plaid checkered marbled paisley leopard zebra camo "
               "speckled tie-dye floral-print", ("pattern",)),
    **_entries("round oval square rectangular triangular cylindrical heart-shaped curved "
               "tapered slanted angled domed", ("shape",)),
    **_entries("sleek elegant stylish chic", ("design",), POS),
    **_entries("cute pretty beautiful gorgeous classy", ("design", _ANY), POS),
    **_entries("ugly tacky cheap-looking", ("design",), NEG),
    # texture
    **_entries("silky velvety buttery plush luxurious lightweight non-greasy non-sticky "
               "whipped fluffy crunchy crispy crisp moist tender", ("texture",), POS),
    **_entries("creamy smooth", ("texture", "flavor"), POS),
    **_entries("soft gentle", ("texture", "sound"), POS),
    **_entries("pale bold muted", ("color",)),
    **_entries("greasy sticky tacky gritty grainy chalky waxy slimy mushy gummy soggy gooey "
               "rubbery stiff crusty lumpy clumpy goopy gluey filmy dry", ("texture",), NEG),
    **_entries("oily rough heavy thick thin runny watery light firm dense chewy flaky "
               "foamy sudsy gel gel-like powdery silky-smooth airy hard", ("texture",)),
    **_entries("lather lathers lathered residue", ("texture",)),
    # scent and flavour sources (an odour or taste named by its source)
    **_entries("vanilla lavender rose citrus lemon lemony lime orange grapefruit coconut almond "
               "jasmine sandalwood musk musky woody floral florals fruity herbal earthy "
               "peppermint spearmint mint minty eucalyptus cinnamon ginger honey cocoa chocolate "
               "chocolatey coffee caramel maple nutty smoky garlic garlicky berry cherry "
               "apple peach strawberry tropical powdery rosemary patchouli cedar pine "
               "menthol milk milky fishy yeasty", ("scent", "flavor")),
    **_entries("fresh clean", ("scent", "flavor", "texture"), POS),
    **_entries("sweet", ("scent", "flavor"), NEU),
    **_entries("strong intense mild subtle faint delicate", ("scent", "flavor")),
    **_entries("overpowering overbearing sickly cloying chemical medicinal rancid stale musty "
               "perfumy artificial fake synthetic", ("scent", "flavor"), NEG),
    **_entries("fragrant", ("scent",), POS),
    **_entries("smelly stinky", ("scent",), NEG),
    **_entries("lingering", ("scent",)),
    # flavour
    **_entries("delicious tasty yummy flavorful flavourful savory savoury zesty juicy",
               ("flavor",), POS),
    **_entries("bland bitter burnt", ("flavor",), NEG),
    **_entries("salty spicy tangy tart", ("flavor",)),
    **_entries("sour natural", ("scent", "flavor")),
    **_entries("dull", ("glossiness", "texture", "color"), NEG),
    **_entries("rich", ("flavor", "color", "texture"), POS),
    # sound
    **_entries("quiet silent", ("sound",), POS),
    **_entries("noisy loud squeaky buzzing humming rattling clicking beeping crackling "
               "whiny", ("sound",), NEG),
    **_entries("crisp deep", ("sound",)),
    # evaluative words: valence only, attribute from the trigger
    **_entries("good great nice lovely amazing wonderful pleasant awesome fantastic excellent "
               "best perfect heavenly divine fabulous incredible terrific appealing "
               "delightful refreshing enticing", (_ANY,), POS),
    **_entries("bad terrible awful horrible gross disgusting nasty unpleasant weird strange off "
               "funny harsh offensive worst", (_ANY,), NEG),
    **_entries("ok okay fine decent", (_ANY,), NEU),
}
# Descriptors that may stand alone (no trigger in the clause) with their attribute.
STANDALONE = {
    "shiny": "glossiness", "glossy": "glossiness", "lustrous": "glossiness", "shimmery": "finish",
    "matte": "finish", "satin": "finish", "dewy": "finish", "metallic": "finish",
    "pearlescent": "finish", "iridescent": "finish", "holographic": "finish",
    "glittery": "finish", "sparkly": "finish", "shimmer": "finish", "glitter": "finish",
    "vibrant": "brightness", "vivid": "brightness", "translucent": "transparency",
    "transparent": "transparency", "see-through": "transparency", "opaque": "transparency",
    "striped": "pattern", "stripes": "pattern", "polka": "pattern", "plaid": "pattern",
    "checkered": "pattern", "marbled": "pattern", "paisley": "pattern", "speckled": "pattern",
    "heart-shaped": "shape", "cylindrical": "shape", "rectangular": "shape",
    "silky": "texture", "velvety": "texture", "non-greasy": "texture", "non-sticky": "texture",
    "greasy": "texture", "sticky": "texture", "gritty": "texture", "grainy": "texture",
    "chalky": "texture", "waxy": "texture", "slimy": "texture", "mushy": "texture",
    "soggy": "texture", "gooey": "texture", "rubbery": "texture", "lumpy": "texture",
    "clumpy": "texture", "crunchy": "texture", "crispy": "texture", "fluffy": "texture",
    "chewy": "texture", "shine": "glossiness", "foamy": "texture", "sudsy": "texture",
    "lather": "texture", "lathers": "texture", "lathered": "texture", "residue": "texture",
    "silky-smooth": "texture", "lightweight": "texture", "gel-like": "texture",
    "fragrant": "scent", "smelly": "scent", "stinky": "scent", "musky": "scent",
    "perfumy": "scent", "delicious": "flavor", "tasty": "flavor", "yummy": "flavor",
    "flavorful": "flavor", "flavourful": "flavor", "bland": "flavor", "savory": "flavor",
    "savoury": "flavor", "zesty": "flavor", "bitter": "flavor", "tangy": "flavor", "spicy": "flavor",
    "salty": "flavor", "noisy": "sound", "squeaky": "sound", "buzzing": "sound",
    "rattling": "sound", "beeping": "sound", "crackling": "sound", "quiet": "sound",
}

# Cue words naming an attribute. "verb" triggers take a complement ("smells good"),
# "noun" triggers take modifiers ("vanilla scent") and copula complements.
TRIGGERS: dict[str, tuple[str, str]] = {
    **{w: ("scent", "noun") for w in
       "smell scent scents fragrance fragrances aroma aromas odor odors odour odours perfume "
       "stench whiff notes".split()},
    **{w: ("scent", "verb") for w in "smells smelled smelling smelt stinks reeks".split()},
    **{w: ("flavor", "noun") for w in
       "taste flavor flavors flavour flavours aftertaste aftertastes palate".split()},
    **{w: ("flavor", "verb") for w in "tastes tasted tasting".split()},
    **{w: ("texture", "noun") for w in "texture textures consistency".split()},
    **{w: ("texture", "verb") for w in "feel feels feeling felt".split()},
    **{w: ("sound", "noun") for w in "sound sounds noise volume".split()},
    **{w: ("color", "noun") for w in "color colors colour colours shade shades hue tint".split()},
    **{w: ("graphics", "noun") for w in "picture pictures image images graphics artwork "
       "illustration illustrations logo print".split()},
    **{w: ("design", "noun") for w in "design designs packaging".split()},
    **{w: ("finish", "noun") for w in "finish finishes".split()},
    **{w: ("shape", "noun") for w in "shape shaped".split()},
    **{w: ("visual", "verb") for w in "look looks looking looked appear appears".split()},
}
# Negated-trigger values: "no smell" -> scent "no smell".
_ABSENCE_VALUE = {"scent": "no smell", "flavor": "no flavor", "texture": "no texture",
                  "sound": "no sound", "color": "no color"}
# Single words that already mean absence.
ABSENCE_WORDS = {
    "odorless": ("scent", "odorless"), "odourless": ("scent", "odorless"),
    "unscented": ("scent", "unscented"), "scentless": ("scent", "unscented"),
    "fragrance-free": ("scent", "fragrance-free"), "scent-free": ("scent", "fragrance-free"),
    "perfume-free": ("scent", "fragrance-free"), "fragranceless": ("scent", "fragrance-free"),
    "odor-free": ("scent", "odorless"), "tasteless": ("flavor", "tasteless"),
    "flavorless": ("flavor", "flavorless"), "flavourless": ("flavor", "flavorless"),
    "soundless": ("sound", "silent"), "colorless": ("color", "colorless"),
    "colourless": ("color", "colorless"), "residue-free": ("texture", "residue"),
    "greaseless": ("texture", "greasy"), "grease-free": ("texture", "greasy"),
    "oil-free": ("texture", "oily"),
}
_VISUAL = {a for a, facet in ATTRIBUTE_TO_FACET.items() if facet == "visual"}
_NEGATORS = {"no", "not", "never", "without", "nor", "none", "zero", "lack", "lacks",
             "lacking", "free", "cannot", "hardly", "barely"}
_INTENSIFIERS = {"very", "so", "really", "quite", "pretty", "super", "extremely", "rather",
                 "slightly", "a", "bit", "little", "somewhat", "too", "just", "definitely",
                 "incredibly", "absolutely", "totally", "fairly", "such", "more", "most",
                 "less", "overly", "nice", "and", "or", "kind", "sort", "of", "almost", "always",
                 "still", "also", "even", "truly", "especially"}
_COPULAS = {"is", "was", "are", "were", "be", "been", "being", "seems", "seemed", "seem",
            "remains", "remained", "stays", "stayed", "s", "'s", "it", "this", "that", "to",
            "the", "its", "has", "have", "had", "got", "gets", "get", "as", "'", "’"}
_DETERMINERS = {"the", "this", "that", "my", "your", "his", "her", "their", "our", "these",
                "those", "a", "an", "its"}
_PERSON = {"me", "i", "you", "we", "us", "him", "them", "myself", "yourself"}
_LIKE_STOP = _DETERMINERS | _COPULAS | _NEGATORS | {
    "and", "but", "or", "when", "after", "before", "if", "as", "with", "for", "in", "on", "at",
    "you", "i", "we", "they", "he", "she", "what", "that", "which", "who", "throughout", "from",
    "into", "over", "under", "about", "by", "during", "while", "until", "than",
    "because", "so", "to", "you'd", "would", "could"}
_AUX = {"it", "they", "i", "you", "we", "does", "did", "do", "to", "will", "would", "can",
        "could", "might", "should", "must", "may", "doesn't", "didn't", "don't", "won't",
        "can't", "dont", "doesnt", "didnt", "also", "still", "really", "just", "and", "that",
        "which", "this", "things"}
_NOUN_ABSENCE = {"no", "without", "lack", "lacks", "lacking", "zero", "free", "none"}
_SENTIMENT_VERBS = {"love": ("loved", POS), "loved": ("loved", POS), "loves": ("loved", POS),
                    "like": ("liked", POS), "liked": ("liked", POS), "likes": ("liked", POS),
                    "enjoy": ("enjoyed", POS), "enjoyed": ("enjoyed", POS),
                    "adore": ("loved", POS), "hate": ("disliked", NEG), "hated": ("disliked", NEG),
                    "dislike": ("disliked", NEG), "disliked": ("disliked", NEG)}
_POS_CUES = {"love", "loved", "loves", "like", "likes", "liked", "enjoy", "enjoyed", "great",
             "nice", "amazing", "wonderful", "perfect", "favorite", "favourite", "beautiful",
             "gorgeous", "lovely", "best", "pleasant", "excellent", "awesome", "fantastic",
             "recommend", "happy", "glad", "delicious", "pleased"}
_NEG_CUES = {"hate", "hated", "dislike", "terrible", "awful", "horrible", "gross", "disgusting",
             "bad", "worst", "unpleasant", "disappointed", "disappointing", "disappointment",
             "overpowering", "sickly", "annoying", "unfortunately", "sadly", "return",
             "returned", "waste", "nasty", "cheap", "problem", "complaint"}
_LIKE_SUBJECTS = {"i", "we", "you", "they", "she", "he", "really", "definitely", "totally",
                  "also", "don't", "didn't", "dont", "didnt", "would", "i'd", "do", "did"}
_CLAUSE_BREAK = {"but", "however", "although", "though", "whereas", "yet", "except"}
_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]|\d+(?:\.\d+)?|[^\sA-Za-z\d]")
_CLAUSE_PUNCT = set(".;!?()[]{}:\"“”")


@dataclasses.dataclass(frozen=True)
class LexiconConfig:
  """Confidence per cue strength (ASER_SPEC §1 confidence in [0, 1])."""

  construction: float = 0.9
  evaluative: float = 0.8
  standalone: float = 0.75
  absence: float = 0.85
  sentiment_verb: float = 0.7
  weak_color: float = 0.7


@dataclasses.dataclass
class _Tok:
  low: str
  start: int
  end: int


def _tokenize(text: str) -> list[_Tok]:
  out = []
  for m in _TOKEN_RE.finditer(text):
    low = m.group().lower().replace("’", "'")
    out.append(_Tok(low, m.start(), m.end()))
  return out


def _clauses(tokens: list[_Tok]) -> list[list[_Tok]]:
  clauses, current = [], []
  for tok in tokens:
    if tok.low in _CLAUSE_PUNCT or tok.low in _CLAUSE_BREAK:
      if current:
        clauses.append(current)
      current = []
      continue
    current.append(tok)
  if current:
    clauses.append(current)
  return clauses


_BARE_NT = {"dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "cant", "wont", "couldnt",
            "havent"}


def _is_negator(low: str) -> bool:
  """"no", "without", "lack"..., and "n't" contractions, also written without apostrophe."""
  return low in _NEGATORS or low.endswith("n't") or low in _BARE_NT


def _descriptor(low: str):
  """Lexicon entry of a word, also for regular comparatives ("fresher", "nicer", "softest")."""
  entry = DESCRIPTORS.get(low)
  if entry is None and len(low) > 4:
    for suffix, add in (("er", ""), ("r", ""), ("est", ""), ("st", ""), ("ier", "y"),
                        ("iest", "y")):
      stem = low[:-len(suffix)] + add
      if low.endswith(suffix) and stem in DESCRIPTORS and DESCRIPTORS[stem][0] != ("color",):
        return DESCRIPTORS[stem]
  return entry


def _is_adverb(low: str) -> bool:
  """Intensifiers and -ly adverbs ("surprisingly quiet") that sit between cue and value."""
  return low in _INTENSIFIERS or (low.endswith("ly") and len(low) > 4 and low not in DESCRIPTORS)


def _is_specific(low: str, attribute: str) -> bool:
  """A quality word for this attribute (or a colour modifier), not a bare evaluation."""
  entry = _descriptor(low)
  return entry is None or _ANY not in entry[0] or attribute in entry[0]


@dataclasses.dataclass
class _Hit:
  attribute: str
  value_idx: list[int]
  span: tuple[int, int]  # token index range for evidence
  kind: str  # construction / evaluative / standalone / absence / sentiment_verb / weak_color
  negated: bool = False
  value_override: str | None = None
  valence: int | None = None


class LexiconExtractor:
  """Extracts ASER_SPEC §1 records from text with the curated lexicon."""

  def __init__(self, config: LexiconConfig = LexiconConfig()):
    self.config = config

  def extract(self, text: str, source: str = "review") -> list[SensoryRecord]:
    """Records for one text; `source` "title" lets plain colour words stand alone."""
    tokens = _tokenize(text)
    records: dict[tuple[str, str], SensoryRecord] = {}
    for clause in _clauses(tokens):
      for hit in self._clause_hits(clause, source):
        record = self._to_record(text, clause, hit)
        key = (record.attribute, record.value)
        if key not in records or records[key].confidence < record.confidence:
          records[key] = record
    return list(records.values())

  def __call__(self, texts: Sequence[str], sources: Sequence[str] | None = None):
    sources = sources or ["review"] * len(texts)
    return [self.extract(t, s) for t, s in zip(texts, sources)]

  # -- hit finding ---------------------------------------------------------------------------

  def _clause_hits(self, clause: list[_Tok], source: str) -> list[_Hit]:
    lows = [t.low for t in clause]
    used: set[int] = set()
    hits: list[_Hit] = []
    for i, low in enumerate(lows):
      if low in ABSENCE_WORDS:
        attribute, value = ABSENCE_WORDS[low]
        hits.append(_Hit(attribute, [i], (i, i + 1), "absence", True, value))
        used.add(i)
    for i, low in enumerate(lows):
      if low in TRIGGERS and i not in used:
        hits.extend(self._trigger_hits(clause, lows, i, used))
    colour_cue = any(TRIGGERS.get(low, ("",))[0] in ("color", "visual") for low in lows)
    for i, low in enumerate(lows):
      if i in used:
        continue
      hit = self._color_hit(lows, i, source, used, colour_cue)
      if hit is None and low in STANDALONE:
        hit = _Hit(STANDALONE[low], [i], (i, i + 1), "standalone")
        used.add(i)
      if hit is not None:
        hits.append(hit)
    for hit in hits:
      self._apply_negation(lows, hit)
    return hits

  def _chain_before(self, lows, i, attribute, used) -> list[int]:
    """Descriptor indices directly modifying position i ("fresh mint [flavor]")."""
    chain, j = [], i - 1
    while j >= 0 and i - j <= 5:
      low = lows[j]
      entry = _descriptor(low)
      if j not in used and ((entry and (attribute in entry[0] or _ANY in entry[0])) or
                            (attribute == "color" and low in _COLOR_MODIFIERS)):
        chain.insert(0, j)
      elif _is_adverb(low) and chain:
        pass
      elif low in _INTENSIFIERS and j - 1 >= 0 and _descriptor(lows[j - 1]):
        pass
      else:
        break
      j -= 1
    return chain

  def _chain_after(self, lows, k, attribute) -> list[int]:
    """Contiguous descriptors from k on (skipping intensifiers and "and")."""
    chain = []
    while k < len(lows):
      entry = _descriptor(lows[k])
      if entry and (attribute in entry[0] or _ANY in entry[0] or (
          attribute in _VISUAL and entry[0][0] in _VISUAL)):
        chain.append(k)
      elif attribute == "color" and lows[k] in _COLOR_MODIFIERS and k + 1 < len(lows):
        chain.append(k)
      elif _is_adverb(lows[k]) and k + 1 < len(lows):
        pass
      else:
        break
      k += 1
    return chain

  def _trigger_hits(self, clause, lows, i, used) -> list[_Hit]:
    attribute, kind = TRIGGERS[lows[i]]
    if kind == "noun" and lows[i] in {"taste", "smell", "sound"} and i > 0 and lows[i - 1] in _AUX:
      kind = "verb"  # "it doesn't taste good", "they smell nice"
    hits = []
    if attribute != "visual" and kind == "verb" and lows[i].endswith("ing") and i > 0 and \
        _descriptor(lows[i - 1]):
      # "best smelling soap", "OK tasting": the participle's modifier is the value.
      chain = self._chain_before(lows, i, attribute, used)
      if chain:
        used.update(chain + [i])
        specific = any(_is_specific(lows[j], attribute) for j in chain)
        return [_Hit(attribute, chain, (chain[0], i + 1),
                     "construction" if specific else "evaluative")]
    if attribute == "visual":
      # "looks/looking X": only specific visual descriptors count, never "looks great".
      chain = self._chain_after(lows, i + 1, "color")
      visual = [k for k in chain if _descriptor(lows[k]) and _descriptor(lows[k])[0][0]
                in _VISUAL and _ANY not in _descriptor(lows[k])[0]]
      if visual:
        chain = [k for k in chain if k <= visual[-1]]
        attr = _descriptor(lows[visual[0]])[0][0]
        used.update(chain + [i])
        hits.append(_Hit(attr, chain, (i, chain[-1] + 1), "construction"))
      return hits
    if attribute == "texture" and kind == "verb" and i > 0 and lows[i - 1] in _PERSON:
      return hits  # "makes me feel good" is about the reviewer, not the product
    if lows[i] == "print" and i > 0 and lows[i - 1] in STANDALONE:
      return hits
    before = [] if kind == "verb" else self._chain_before(lows, i, attribute, used)
    if kind == "noun" and not before and i > 1 and lows[i - 1] == "in" and _descriptor(lows[i - 2]):
      before = self._chain_before(lows, i - 1, attribute, used)  # "delicate in flavor"
    after_start = i + 1
    if kind == "noun" and after_start < len(lows) and lows[after_start] == "of":
      k = after_start + 1
      if k < len(lows) and lows[k] in _DETERMINERS:
        # "the flavor of the soup was wonderful": skip the noun phrase to its copula.
        while k < len(lows) and lows[k] not in _COPULAS - _DETERMINERS and k - i < 6:
          k += 1
        after_start = k
      else:
        src = self._like_phrase(lows, k)
        if src:
          used.update(src + [i])
          return [_Hit(attribute, src, (i, src[-1] + 1), "construction")]
    if kind == "verb" and after_start < len(lows) and lows[after_start] in {"like", "of"}:
      src = self._like_phrase(lows, after_start + 1)
      if src:
        used.update(src + [i])
        return [_Hit(attribute, src, (i, src[-1] + 1), "construction")]
    k, copula = after_start, False
    while k < len(lows) and (lows[k] in _COPULAS or lows[k] in _INTENSIFIERS
                             or _is_negator(lows[k])) and k - i <= 5:
      copula = copula or lows[k] in _COPULAS
      k += 1
    if copula and k < len(lows) and lows[k] == "like":
      src = self._like_phrase(lows, k + 1)  # "the texture was like glue"
      if src:
        used.update(src + [i])
        return [_Hit(attribute, src, (i, src[-1] + 1), "construction")]
    after = self._chain_after(lows, k, attribute) if (kind == "verb" or copula) else []
    after = [j for j in after if j not in used]
    if attribute == "texture" and kind == "verb":
      before = []
    for chain, span in ((before, (before[0], i + 1) if before else None),
                        (after, (i, after[-1] + 1) if after else None)):
      if not chain:
        continue
      specific = [j for j in chain if _is_specific(lows[j], attribute)]
      kind_of = "construction" if specific else "evaluative"
      used.update(chain + [i])
      hits.append(_Hit(attribute, chain, span, kind_of))
    if hits:
      return hits
    used.add(i)
    # No value: an absent attribute ("no smell") or a sentiment verb ("love the scent").
    for j in range(max(0, i - 3), i):
      if attribute not in _ABSENCE_VALUE or not _is_negator(lows[j]):
        continue
      if kind == "noun":
        absent = lows[j] in _NOUN_ABSENCE or any(
            w in {"have", "has", "had", "leave", "leaves", "any"} for w in lows[j + 1:i])
      else:
        absent = attribute in {"scent", "flavor"} and i - j <= 2
      if absent:
        value = "no " + lows[i] if kind == "noun" else _ABSENCE_VALUE[attribute]
        return [_Hit(attribute, [], (j, i + 1), "absence", True, value)]
    for j in range(max(0, i - 4), i):
      if lows[j] in _SENTIMENT_VERBS and attribute in _ABSENCE_VALUE:
        value, valence = _SENTIMENT_VERBS[lows[j]]
        return [_Hit(attribute, [], (j, i + 1), "sentiment_verb", False, value, valence)]
    return []

  def _like_phrase(self, lows, k) -> list[int]:
    """Up to three content words after "like"/"of" ("tastes like a specialty pizza")."""
    while k < len(lows) and lows[k] in {"a", "an", "the", "real"}:
      k += 1
    out = []
    while k < len(lows) and len(out) < 3 and lows[k] not in _LIKE_STOP and re.match(
        r"[a-z]", lows[k]):
      out.append(k)
      k += 1
    return out

  def _color_hit(self, lows, i, source, used, colour_cue) -> _Hit | None:
    entry = _descriptor(lows[i])
    if entry is None or entry[0] != ("color",):
      return None
    nxt = lows[i + 1] if i + 1 < len(lows) else ""
    if nxt in _COLOR_COLLOCATIONS or nxt in TRIGGERS and TRIGGERS[nxt][0] in {"scent", "flavor"}:
      return None
    mods = []
    j = i - 1
    while j >= 0 and lows[j] in _COLOR_MODIFIERS and j not in used:
      mods.insert(0, j)
      j -= 1
    if mods or lows[i] in _STRONG_COLORS or colour_cue:
      kind = "construction" if mods or colour_cue else "standalone"
    elif source == "title":
      kind = "weak_color"
    else:
      return None
    used.update(mods + [i])
    idx = mods + [i]
    return _Hit("color", idx, (idx[0], i + 1), kind)

  def _apply_negation(self, lows, hit: _Hit) -> None:
    if hit.kind == "absence" or not hit.value_idx:
      return
    first = hit.value_idx[0]
    start = min(first, hit.span[0])
    window = range(max(0, start - 4), first)
    negs = [j for j in window if _is_negator(lows[j])]
    if not negs:
      return
    j = negs[-1]
    between = lows[j + 1:first]
    if any(w in {"too", "overly"} for w in between):
      hit.value_override = "not too " + " ".join(lows[k] for k in hit.value_idx)
      hit.valence = POS
      hit.span = (j, hit.span[1])
      return
    entry = _descriptor(lows[first])
    evaluative = entry is not None and _ANY in entry[0]
    hit.span = (min(j, hit.span[0]), hit.span[1])
    if evaluative:
      hit.value_override = "not " + " ".join(lows[k] for k in hit.value_idx)
      hit.valence = -(entry[1]) if entry[1] else NEG
    else:
      hit.negated = True

  # -- record building ----------------------------------------------------------------------

  def _to_record(self, text: str, clause: list[_Tok], hit: _Hit) -> SensoryRecord:
    lows = [t.low for t in clause]
    value = hit.value_override or " ".join(lows[k] for k in hit.value_idx)
    start, end = clause[hit.span[0]].start, clause[hit.span[1] - 1].end
    evidence = text[start:end]
    valence = hit.valence
    if valence is None:
      vals = [_descriptor(lows[k])[1] for k in hit.value_idx if _descriptor(lows[k])]
      valence = POS if POS in vals and NEG not in vals else NEG if NEG in vals else NEU
      if any(lows[k] == "too" for k in range(max(0, hit.value_idx[0] - 2), hit.value_idx[0])) \
          if hit.value_idx else False:
        valence = NEG
      if hit.negated:
        valence = -valence if valence else NEU
    if valence == NEU and not hit.negated:
      valence = self._clause_valence(lows)
    polarity = {POS: "positive", NEG: "negative", NEU: "neutral"}[valence]
    confidence = getattr(self.config, hit.kind)
    return SensoryRecord(hit.attribute, value, evidence, polarity, hit.negated, confidence)

  @staticmethod
  def _clause_valence(lows: list[str]) -> int:
    score = 0
    for j, low in enumerate(lows):
      sign = POS if low in _POS_CUES else NEG if low in _NEG_CUES else NEU
      if low in {"like", "likes"} and (j == 0 or lows[j - 1] not in _LIKE_SUBJECTS):
        sign = NEU  # "like" as a preposition carries no sentiment
      if sign and any(_is_negator(w) for w in lows[max(0, j - 3):j]):
        sign = -sign
      score += sign
    return POS if score > 0 else NEG if score < 0 else NEU
