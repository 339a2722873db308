#!/usr/bin/env python3
"""Export an open_clip / CLIP model for EdgeFM: a TorchScript image encoder, the class pool
built from its text tower, and the sample spec (size, resize mode, mean/std) it expects.

Run it where the weights are (it downloads nothing by itself unless open_clip does):

    pip install torch open_clip_torch
    python3 tools/export_clip.py --model ViT-B-32 --pretrained laion2b_s34b_b79k \
        --classes "cat,dog,car" --out models/clip

writes models/clip/fm.ts, models/clip/pool.json and models/clip/spec.json, used as

    edgefm serve --fm-torchscript models/clip/fm.ts --fm-pool models/clip/pool.json \
                 --fm-spec models/clip/spec.json

The TorchScript module maps n x 3 x H x W tensors, already normalized by the spec's mean/std
(EdgeFM applies them), to n x D embeddings.
"""
import argparse
import json
import os
import sys

TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "a photo of the small {}.",
             "a photo of the large {}.", "a close-up photo of a {}.", "a bright photo of a {}."]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model name")
    parser.add_argument("--pretrained", default="laion2b_s34b_b79k", help="open_clip weights tag")
    parser.add_argument("--classes", required=True,
                        help="comma-separated class names, or @FILE with one a line")
    parser.add_argument("--templates", default=None,
                        help="prompt templates with {} (comma-separated; default: six CLIP ones)")
    parser.add_argument("--out-dir", dest="out", required=True, help="output folder")
    args = parser.parse_args()

    try:
        import torch
        import open_clip
    except ImportError as e:
        sys.exit(f"export_clip: needs torch and open_clip_torch ({e})")

    if args.classes.startswith("@"):
        with open(args.classes[1:]) as f:
            classes = [line.strip() for line in f if line.strip()]
    else:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if len(classes) < 2:
        sys.exit("export_clip: expected at least 2 class names")
    templates = args.templates.split(",") if args.templates else TEMPLATES

    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=args.pretrained)
    model.eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = list(getattr(model.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = list(getattr(model.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)

    class ImageTower(torch.nn.Module):
        def __init__(self, visual):
            super().__init__()
            self.visual = visual

        def forward(self, x):
            return self.visual(x)

    os.makedirs(args.out, exist_ok=True)
    example = torch.zeros(1, 3, size, size)
    traced = torch.jit.trace(ImageTower(model.visual), example)
    traced.save(os.path.join(args.out, "fm.ts"))

    vectors = {}
    with torch.no_grad():
        for name in classes:
            tokens = tokenizer([t.format(name) for t in templates])
            e = model.encode_text(tokens)
            e = e / e.norm(dim=-1, keepdim=True)
            m = e.mean(0)
            vectors[name] = (m / m.norm()).tolist()
    dim = len(next(iter(vectors.values())))
    pool = {"format": "edgefm-pool", "version": 1, "dim": dim,
            "classes": [{"name": n, "vector": v} for n, v in vectors.items()]}
    with open(os.path.join(args.out, "pool.json"), "w") as f:
        json.dump(pool, f)
    spec = {"modality": "image", "shape": [3, size, size],
            "image": {"resize_mode": "shorter", "fill": 0}, "mean": mean, "std": std}
    with open(os.path.join(args.out, "spec.json"), "w") as f:
        json.dump(spec, f, indent=2)
    print(f"export_clip: {args.model} ({args.pretrained}) -> {args.out}: image tower 3x{size}x{size} "
          f"-> {dim}, {len(classes)} classes")


if __name__ == "__main__":
    main()
