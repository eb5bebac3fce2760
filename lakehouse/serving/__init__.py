"""Serving: the MySQL-protocol SQL endpoint (`lakehouse serve`) and the web dashboard
(`lakehouse dashboard`), both behind the same login, both reading only through the facade's governed
calls (grants, masks, limits, audit)."""
