from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import HasAPIKey


class VerifyView(APIView):
    """200 {"valid": true} when the library's HasAPIKey accepts the
    `Authorization: Api-Key <key>` header; otherwise DRF answers 403."""

    permission_classes = [HasAPIKey]  # explicit, same as the project default

    def get(self, request):
        return Response({"valid": True})

    def post(self, request):
        return Response({"valid": True})
