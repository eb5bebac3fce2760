"""Governance: roles, grants and dynamic data masking (MaxCompute's model) on every path data leaves by.

store.py holds the state (in the catalog database), policy_parser.py / policy_apply.py the policy as
code, masking.py the masking functions, access.py governed queries and reads, share.py exports.
"""
