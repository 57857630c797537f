"""LibreOffice Help as a cross-lingual evaluation (benchmarks/cross_lingual.py): pages and paragraphs,
module labels, product-name masking, aligned paragraph pairs and translation retrieval."""
