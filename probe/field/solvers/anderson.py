"""placeholder"""
from . import register


@register("anderson")
class Anderson:
    pass
