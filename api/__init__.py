"""Ferry's HTTP surface: thin FastAPI routers over the services (`api.ledger` over
`ledger.service.Ledger`). Request and response schemas live here, separate from the table
models; routers parse untrusted input once into the service's types, call one service method,
and render errors as ``{"error": {"code": BridgeError.code, "message": str}}``.

Must not hold business rules, open database sessions or import chain adapters.
"""
