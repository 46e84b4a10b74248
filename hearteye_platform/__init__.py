"""HeartEye's platform code: user accounts, tokens, the audit trail and the platform database.

Kept apart from the ECG domain package (``hearteye``) so that it never rides inside a logged model.
"""
