"""Where data is kept: the landing object store, the catalog database, open-format table stores."""
