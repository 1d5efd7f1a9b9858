"""Evidence for the places model teams already look: MLflow runs, and the model card."""
