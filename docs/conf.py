project = "django-ciba"
author = "django-ciba contributors"
extensions: list[str] = []
master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
