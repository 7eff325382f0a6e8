"""Prepared data as the train and evaluate stages read it: shards, JPEG decoding, and the
paper's augmentation and test views. Preparation itself lives in harness/prepare/."""
