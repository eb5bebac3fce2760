"""Landing: the path grammar of landed files, the DataScan diff against the manifest, ODS loads."""
