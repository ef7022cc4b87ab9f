"""Chat prompts for LLM teachers (vLLM, OpenAI-compatible endpoints).

The ASER paper (appendix B) prompts its seed teacher with a sensory-only extraction
instruction, the fixed attribute inventory, the record schema, and one input text per
request. The wording here is our own restatement of that setup (ASER_SPEC §1).
"""

from __future__ import annotations

import json

from aser_jax.teacher.schema import ATTRIBUTE_TO_FACET, FIELDS

_ATTRIBUTE_HINTS = {
    "color": "hue or shade (burgundy, light pink)",
    "pattern": "repeated surface motif (striped, marbled)",
    "shape": "form or outline (round, slim, heart-shaped)",
    "graphics": "printed pictures, logos or artwork",
    "brightness": "how bright or vivid it looks",
    "glossiness": "shine or sheen (glossy, shiny, dull)",
    "transparency": "clear, sheer, translucent or opaque",
    "finish": "surface finish (matte, satin, metallic, shimmer)",
    "design": "overall look and styling (sleek, cute packaging)",
    "texture": "how it feels to the touch or in the mouth (silky, greasy, crunchy)",
    "scent": "smell or fragrance (vanilla, odorless)",
    "flavor": "taste (bitter, nutty)",
    "sound": "noise or audio quality (quiet, loud, crisp bass)",
}

SYSTEM_PROMPT = (
    "You annotate product text with SENSORY information only: what a person would see, "
    "touch, hear, smell or taste. Ignore price, shipping, durability, effectiveness, size "
    "and any other non-sensory property.\n\n"
    "Return a JSON array. Each element describes one sensory property and has exactly these "
    f"fields: {', '.join(FIELDS)}.\n"
    "- attribute: one of\n"
    + "".join(f"    {a} ({ATTRIBUTE_TO_FACET[a]}): {h}\n" for a, h in _ATTRIBUTE_HINTS.items())
    + "- value: a short phrase naming the property, e.g. \"matte black\" or \"vanilla\".\n"
    "- evidence: the words of the input that support the value, copied exactly.\n"
    "- polarity: the writer's sentiment toward this property: positive, negative, neutral, "
    "or unknown.\n"
    "- negated: true only when the text says the property is absent (\"no smell\", "
    "\"fragrance-free\", \"odorless\"), otherwise false.\n"
    "- confidence: a number from 0 to 1 for how sure you are.\n"
    "Use only what the text states; do not guess. If the text has no sensory content, "
    "return []. Output the JSON array and nothing else."
)

_EXAMPLE_INPUT = "Smells like warm vanilla, but the lotion is a bit greasy. No artificial dyes."
_EXAMPLE_OUTPUT = [
    {"attribute": "scent", "value": "warm vanilla", "evidence": "Smells like warm vanilla",
     "polarity": "positive", "negated": False, "confidence": 0.9},
    {"attribute": "texture", "value": "greasy", "evidence": "a bit greasy",
     "polarity": "negative", "negated": False, "confidence": 0.85},
]


def user_message(text: str, domain: str | None = None, source: str | None = None) -> str:
  """One request: the optional domain/source tags, then the text."""
  head = []
  if domain:
    head.append(f"Domain: {domain}")
  if source:
    head.append(f"Source: {source}")
  head.append("Text:\n" + text)
  return "\n".join(head)


def build_messages(text: str, domain: str | None = None, source: str | None = None,
                   few_shot: bool = True) -> list[dict[str, str]]:
  """Chat messages for one text: system instruction, optional worked example, the text."""
  messages = [{"role": "system", "content": SYSTEM_PROMPT}]
  if few_shot:
    messages += [
        {"role": "user", "content": user_message(_EXAMPLE_INPUT, source="review")},
        {"role": "assistant", "content": json.dumps(_EXAMPLE_OUTPUT)},
    ]
  messages.append({"role": "user", "content": user_message(text, domain, source)})
  return messages
