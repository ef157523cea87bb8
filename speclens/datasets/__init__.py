"""Readers that yield samples: ImageNet folders, MS-COCO, generic image folders, the embedded sample."""
