"""Streamlit-only helpers shared by the pages. The engine lives in cai_core."""
