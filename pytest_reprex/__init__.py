"""pytest plugin for reprex: replay bundles as tests, capture failing tests as bundles."""
