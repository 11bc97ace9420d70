"""Patient-level safety signals: the one active suicide-risk Flag per patient and the evidence it names."""
