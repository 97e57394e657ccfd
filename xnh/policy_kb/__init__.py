"""The knowledge base as data (schemes, levels, hospitals, Q&A) and the code that reads it:
the estimator, hospital matching and question matching. Imports no web or messaging library."""
