"""Promotion (the README's "Promotion"): pin exactly the digest an upstream AppRelease recorded Succeeded.

`eligibility.py` holds the rules (pure); the reconciler reads the upstream AppRelease and applies them.
"""
