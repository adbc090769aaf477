"""The bundle manifest schema (bundle-v1.schema.json, the contract) and its shipped validator
(bundle_v1.py, generated from it by generate.py)."""
