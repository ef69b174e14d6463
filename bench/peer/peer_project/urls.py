from django.urls import path

from verifier.views import VerifyView

urlpatterns = [
    path("verify", VerifyView.as_view()),  # POST (GET also answers)
    path("auth", VerifyView.as_view()),  # GET, for nginx auth_request-style checks
]
