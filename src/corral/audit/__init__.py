"""The tamper-evident audit trail: every action and decision, hash-chained and signed.

``record`` says what an entry holds, ``canonical`` how it is hashed, ``chain`` how a sequence of
records is verified (pure), ``signing`` the checkpoint keys, ``log`` the appends (in the
caller's transaction), ``decisions`` the batched governance decisions, ``service`` reading it.
"""
