"""Numbers from predictions: top-k scoring, ensembles, statistics, the paper's claims, the
verdicts (verdict.py, also behind `harness verdict`), ablation effects and the compare stage's
content. No torch training code here."""
