"""Semantic segmentation on PASCAL-VOC-format data (`songkit segment`)."""
