"""What the course measures (``metrics``): accuracy, zero-shot classification, retrieval, sample quality,
prompt adherence and diversity. Takes models and data, trains nothing."""
