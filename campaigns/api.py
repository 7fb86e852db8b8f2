"""REST API for merchants and their members (/api/v1/merchants/...)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from . import selectors, services
from .choices import CURRENCIES, Role
from .models import Membership, Merchant
from .tenancy import MerchantAPIMixin, tenant_exempt


def _raise_drf(error: DjangoValidationError):
    raise serializers.ValidationError(
        error.message_dict if hasattr(error, "error_dict") else {"detail": error.messages}
    )


class MerchantOutput(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Merchant
        fields = ["slug", "name", "currency", "timezone", "role", "created_at"]

    def get_role(self, merchant: Merchant) -> str | None:
        membership = self.context.get("membership")
        if membership is not None and membership.merchant_id == merchant.pk:
            return membership.role
        roles = self.context.get("roles", {})
        return roles.get(merchant.pk)


@tenant_exempt
@extend_schema(tags=["merchants"])
class MyMerchantsApi(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The merchants the caller belongs to, with the caller's role in each."""

    permission_classes = [IsAuthenticated]
    serializer_class = MerchantOutput
    pagination_class = None

    def get_queryset(self):
        return selectors.merchants_for_user(user=self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        memberships = selectors.memberships_for_user(user=self.request.user)
        context["roles"] = {m.merchant_id: m.role for m in memberships}
        return context


@extend_schema(tags=["merchants"])
class MerchantApi(MerchantAPIMixin, viewsets.GenericViewSet):
    """One merchant's settings; owners may change name, currency and time zone."""

    model = Merchant
    write_role = Role.OWNER
    serializer_class = MerchantOutput

    class MerchantUpdateInput(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        currency = serializers.ChoiceField(choices=CURRENCIES, required=False)
        timezone = serializers.CharField(max_length=64, required=False)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "membership": self.membership}

    def retrieve(self, request, **kwargs):
        return Response(MerchantOutput(self.merchant, context=self.get_serializer_context()).data)

    @extend_schema(request=MerchantUpdateInput, responses=MerchantOutput)
    def partial_update(self, request, **kwargs):
        data = self.MerchantUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            merchant = services.merchant_update(
                merchant=self.merchant, actor=request.user, **data.validated_data
            )
        except DjangoValidationError as error:
            _raise_drf(error)
        return Response(MerchantOutput(merchant, context=self.get_serializer_context()).data)


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    email = serializers.EmailField(source="user.email")

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]


@extend_schema(tags=["members"])
class MemberApi(MerchantAPIMixin, viewsets.GenericViewSet):
    """Members of the merchant. Everyone may list them; only owners invite, re-role or remove."""

    model = Membership
    write_role = Role.OWNER
    serializer_class = MemberOutput
    lookup_url_kwarg = "member_id"
    pagination_class = None

    class MemberInviteInput(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)

    class MemberRoleInput(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    def get_queryset(self):
        return selectors.merchant_members(merchant=self.merchant)

    def list(self, request, **kwargs):
        return Response(MemberOutput(self.get_queryset(), many=True).data)

    def retrieve(self, request, **kwargs):
        return Response(MemberOutput(self.get_object()).data)

    @extend_schema(request=MemberInviteInput, responses={201: MemberOutput})
    def create(self, request, **kwargs):
        data = self.MemberInviteInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership = services.member_invite(
                merchant=self.merchant,
                actor=request.user,
                site_url=request.build_absolute_uri("/"),
                **data.validated_data,
            )
        except DjangoValidationError as error:
            _raise_drf(error)
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberRoleInput, responses=MemberOutput)
    def partial_update(self, request, **kwargs):
        membership = self.get_object()
        data = self.MemberRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.member_change_role(
                membership=membership, role=data.validated_data["role"], actor=request.user
            )
        except DjangoValidationError as error:
            _raise_drf(error)
        return Response(MemberOutput(membership).data)

    def destroy(self, request, **kwargs):
        try:
            services.member_remove(membership=self.get_object(), actor=request.user)
        except DjangoValidationError as error:
            _raise_drf(error)
        return Response(status=status.HTTP_204_NO_CONTENT)
