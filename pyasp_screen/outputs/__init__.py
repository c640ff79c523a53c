"""Stage 6: results for people and programs.

- :mod:`.render`: tables, JSON (docs/schema/) and CSV.
- :mod:`.graph`: explanation graphs (networkx data; Graphviz and Mermaid printing) and charts.
- :mod:`.stream`: results files of one row per patient (.jsonl, .csv, .parquet), with resume.
"""
