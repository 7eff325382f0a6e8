"""Numbers from predictions: top-k scoring, ensembles, statistics, the paper's claims,
ablation effects and the compare stage's content. No torch training code here."""
