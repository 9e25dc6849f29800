"""Authentication-device API for the signed-in end user: list, read, approve, deny (AD-*)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions as drf_exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from django_ciba import assurance
from django_ciba.approval import decisions
from django_ciba.approval.serializers import ApproveSerializer, AuthenticationRequestSerializer
from django_ciba.exceptions import DecisionError


class DeviceAPIView(APIView):
    authentication_classes = (SessionAuthentication,)
    permission_classes = (IsAuthenticated,)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DecisionError):
            body = {"error": exc.code, "error_description": str(exc)}
            return Response(body, status=exc.status_code)
        if isinstance(exc, drf_exceptions.APIException):
            response = super().handle_exception(exc)
            detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
            response.data = {"error": exc.default_code, "error_description": str(detail or exc.detail)}
            return response
        return super().handle_exception(exc)


class DeviceRequestListView(DeviceAPIView):
    def get(self, request: Any) -> Response:
        pending = decisions.requests_for_user(request.user)
        return Response(AuthenticationRequestSerializer(pending, many=True).data)


class DeviceRequestDetailView(DeviceAPIView):
    def get(self, request: Any, pk: int) -> Response:
        auth_request = decisions.get_for_user(request.user, pk)
        return Response(AuthenticationRequestSerializer(auth_request).data)


class DeviceRequestApproveView(DeviceAPIView):
    def post(self, request: Any, pk: int) -> Response:
        serializer = ApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        auth_request = decisions.get_for_user(request.user, pk)
        context = assurance.context_for(request, request.user)
        auth_request = decisions.approve(
            auth_request, user=request.user, context=context, **serializer.decision_kwargs()
        )
        return Response(AuthenticationRequestSerializer(auth_request).data)


class DeviceRequestDenyView(DeviceAPIView):
    def post(self, request: Any, pk: int) -> Response:
        auth_request = decisions.get_for_user(request.user, pk)
        auth_request = decisions.deny(auth_request, user=request.user)
        return Response(AuthenticationRequestSerializer(auth_request).data)
