"""Deployment files generated from the topic catalogue: compose, Kubernetes, broker ACLs.

``python -m deploy.generate`` writes them; ``--check`` says which committed files are stale.
"""
