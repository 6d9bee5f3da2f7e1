"""Service desks that receive OpsWatch's work orders, one module per desk.

`local` keeps tickets in the state store itself (the default desk, and the record of every
ticket decision other desks mirror).
"""
