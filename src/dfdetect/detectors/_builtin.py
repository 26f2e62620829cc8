"""Imports every built-in detector module so that its ``@register`` runs."""
# one import per detector module; keep alphabetical
from . import dada  # noqa: F401,E402
from . import defakehop  # noqa: F401,E402
from . import hyperfake  # noqa: F401,E402
from . import metric_learning  # noqa: F401,E402
from . import rgb_cnn  # noqa: F401,E402
from . import two_branch  # noqa: F401,E402
