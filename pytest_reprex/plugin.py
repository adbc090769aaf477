"""pytest11 entry point. Hooks are added as the plugin grows; the module must import
cheaply because pytest loads it in every session of every project with reprex installed."""
