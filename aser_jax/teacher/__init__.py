"""Stage 1 (ASER_SPEC §1): item text -> evidence-grounded sensory records.

schema (records, validator), text (readers, item-text assembly), lexicon (model-free
teacher), prompts and backends (lexicon / vllm / openai / replay behind one interface),
extract (sharded resumable writer), alignment (table-7 metrics), annotations (hand labels).
"""
