"""The report stage: rendering (Markdown and self-contained HTML), its sections, figures and
the list of departures from the paper. Computes nothing new from the results."""
