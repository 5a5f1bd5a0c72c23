"""Customers and their sites."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from websonic.accounts import access
from websonic.web.api.schemas import CustomerIn, CustomerOut, SiteOut
from websonic.web.auth import Viewer, api_viewer, platform_of

router = APIRouter(tags=["customers"])
Caller = Annotated[Viewer, Depends(api_viewer)]


@router.get("/customers")
def list_customers(request: Request, viewer: Caller) -> list[CustomerOut]:
    with platform_of(request).transaction() as session:
        return [CustomerOut.of(c) for c in access.visible_customers(session, viewer.user)]


@router.post("/customers", status_code=201)
def add_customer(
    body: CustomerIn, request: Request, response: Response, viewer: Caller
) -> CustomerOut:
    with platform_of(request).transaction() as session:
        customer = access.add_customer_as(session, viewer.user, body.slug, body.name)
        response.headers["Location"] = f"{request.url.path}/{customer.slug}/sites"
        return CustomerOut.of(customer)


@router.get("/customers/{customer}/sites")
def list_sites(customer: str, request: Request, viewer: Caller) -> list[SiteOut]:
    with platform_of(request).transaction() as session:
        return [SiteOut.of(s) for s in access.sites_for(session, viewer.user, customer)]
