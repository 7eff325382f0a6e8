"""Report section: the CNNs pre-trained on ImageNet Fall 2011 (paper 6), from compare.json."""

from __future__ import annotations

from harness.analysis.handover import Pretraining


def section(doc, inp) -> None:
    pre: Pretraining | None = inp.compare.get("pretraining")
    if not pre:
        doc.p("Off in this run (pretrain.enabled []): the claims of CNNs pre-trained on ImageNet Fall 2011 stay "
              "not tested. `harness preset fall2011 --root FALL2011 --ilsvrc2012-root ILSVRC2012` sets the whole "
              "path (docs/paper.md, \"The Fall-2011 path\").")
        return
    f = pre["facts"]
    doc.p(f"Pre-training data: {f['source']} (declared release {f['release']}), {f['n_classes']:,} synsets, "
          f"{sum(f['counts'].values()):,} images ({f['counts']}), split {f['split']}; "
          f"{f['n_excluded']} image(s) excluded as duplicates of ILSVRC-2012 validation images"
          + (f" (against {f['excluded_against']})" if f["excluded_against"] else " (no exclusion configured)") + ". "
          f"Schedule {f['schedule']}, re-initialised for fine-tuning from {f['reinit']} up. "
          f"Full paper network with the sixth conv layer: {'yes' if pre['full_paper_model'] else 'no (scaled down)'}.")
    doc.table(["fine-tuned seed", "protocol", "top-1 %", "top-5 %"],
              [[r["seed"], p, v["top1_error"], v["top5_error"]] for r in pre["finetuned"]
               for p, v in r.items() if p != "seed"])
    if pre.get("pretrained"):
        doc.p(f"The pre-trained six-conv CNNs on the held-out {f['split']} split of their own data (with split half, the "
              "test half of the Fall-2009 protocol: claims fall2009-top1/top5):")
        doc.table(["pre-trained seed", "images", "protocol", "top-1 %", "top-5 %"],
                  [[r["seed"], r["n_images"], p, v["top1_error"], v["top5_error"]] for r in pre["pretrained"]
                   for p, v in r.items() if p not in ("seed", "n_images")])
    rows = [[p, key, m["k"], len(m["groups"]), m["top1_error"][0] if m["groups"] else "–",
             m["top5_error"][0] if m["groups"] else "–"]
            for p, mixes in pre["ensembles"].items() for key, m in mixes.items() if m["groups"]]
    doc.p("Ensembles of ILSVRC-only and fine-tuned CNNs (mix = ILSVRC-only + pre-trained; error of the first "
          "disjoint group; the paper's 7 CNNs are the mix 5+2):")
    doc.table(["protocol", "mix", "k", "disjoint groups", "top-1 %", "top-5 %"], rows)
    claims = [c for c in inp.compare.get("claims", []) if c.get("pretraining", "none") != "none"]
    doc.table(["claim", "verdict", "measured", "why / what is missing"],
              [[c["id"], c["verdict"], (c.get("measured_on_run") or {}).get("estimate", c.get("estimate", "–")),
                c.get("reason") or "–"] for c in claims], text_last=True)
