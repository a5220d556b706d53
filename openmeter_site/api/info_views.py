from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from openmeter_site.core.money import currency_list


class CurrencyListView(APIView):
    """`GET /api/v1/info/currencies` → Currency[] (a plain array)."""

    def get(self, request: Request) -> Response:
        return Response(currency_list())
