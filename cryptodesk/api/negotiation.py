"""Content negotiation that answers the common requests without parsing Accept."""

from rest_framework.negotiation import DefaultContentNegotiation

_ANY = frozenset({"", "*/*"})


class SingleRendererNegotiation(DefaultContentNegotiation):
    """One renderer, no format asked for, and Accept absent, `*/*` or the renderer's own type: that renderer,
    as DRF would pick it. Anything else (a format, another type, several renderers) takes DRF's full path.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and not format_suffix and not self._format_asked(request):
            renderer = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", "").strip()
            if accept in _ANY or accept == renderer.media_type:
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)

    def _format_asked(self, request) -> bool:
        if not request.META.get("QUERY_STRING"):
            return False
        return bool(request.query_params.get(self.settings.URL_FORMAT_OVERRIDE))
