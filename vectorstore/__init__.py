"""Documents, chunking, embeddings and the Chroma store."""
