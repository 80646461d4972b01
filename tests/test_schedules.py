"""Schedules (heartbeats): the API, due times (every N minutes; daily in the organization's zone,
across DST), the atomic claim, and the scheduled turn: text inside the window, the template or a
recorded skip outside it, a person's thread left alone."""

import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection as db
from django.utils import timezone

from apps.agents import schedules
from apps.agents.models import AgentRun, Schedule
from apps.agents.tasks import run_turn
from apps.conversations.models import Message, Thread
from apps.whatsapp.tasks import templates_sync
from tests.conftest import json_of
from tests.factories import make_agent, make_thread
from tests.test_templates import ORDER_UPDATE

pytestmark = pytest.mark.django_db(transaction=True)
NEW_YORK = ZoneInfo("America/New_York")


def fire(schedule: Schedule) -> AgentRun | None:
    """Make the schedule due now, fire it as beat would, and run the turn it started."""
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    schedules.schedules_fire_due()
    run = AgentRun.objects.filter(schedule=schedule).order_by("-created_at").first()
    if run is not None:
        run_turn(str(run.pk))
        run.refresh_from_db()
    schedule.refresh_from_db()
    return run


# --- The API -------------------------------------------------------------------------------------


def test_the_api_creates_lists_and_deletes_schedules(api, agent, org, other_org):
    org.time_zone = "Europe/Madrid"
    org.save()
    url = f"/api/v1/agents/{agent.pk}/schedules"

    created = api.post(url, {"contact": "+1 555 123 4567", "prompt": "Remind them of tomorrow's visit.",
                             "at": "09:30"}, format="json")
    every = api.post(url, {"contact": "+15551234567", "prompt": "Check in.", "every_minutes": 60,
                           "template": {"name": "order_update", "language": "en_US",
                                        "variables": ["Ana", "{{reply}}"]}}, format="json")

    assert created.status_code == 201, created.content
    body = json_of(created)
    assert (body["contact"], body["at"], body["every_minutes"], body["time_zone"]) == (
        "+15551234567", "09:30", None, "Europe/Madrid")
    due = datetime.fromisoformat(body["next_run_at"]).astimezone(ZoneInfo("Europe/Madrid"))
    assert (due.hour, due.minute) == (9, 30) and due > timezone.now()
    assert every.status_code == 201 and json_of(every)["template"]["variables"] == ["Ana", "{{reply}}"]
    listed = json_of(api.get(url))
    assert [s["id"] for s in listed["results"]] == [body["id"], json_of(every)["id"]]
    assert api.delete(f"{url}/{body['id']}").status_code == 204
    assert json_of(api.get(url))["count"] == 1
    other_agent = make_agent(other_org)
    assert api.get(f"/api/v1/agents/{other_agent.pk}/schedules").status_code == 404
    assert api.delete(f"{url}/{body['id']}").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"contact": "+15551234567", "prompt": "Hi"}, "every_minutes"),  # neither
    ({"contact": "+15551234567", "prompt": "Hi", "every_minutes": 5, "at": "09:00"}, "every_minutes"),  # both
    ({"contact": "+15551234567", "prompt": "Hi", "at": "25:00"}, "at"),
    ({"contact": "+15551234567", "prompt": "Hi", "every_minutes": 0}, "every_minutes"),
    ({"contact": "nobody", "prompt": "Hi", "every_minutes": 5}, "contact"),
    ({"contact": "+15551234567", "prompt": " ", "every_minutes": 5}, "prompt"),
    ({"contact": "+15551234567", "prompt": "Hi", "every_minutes": 5, "template": {"name": "x"}}, "template"),
])
def test_a_bad_schedule_is_a_400_that_names_the_field(api, agent, body, field):
    response = api.post(f"/api/v1/agents/{agent.pk}/schedules", body, format="json")

    assert response.status_code == 400 and field in json_of(response), response.content
    assert not Schedule.objects.exists()


# --- When ----------------------------------------------------------------------------------------


def test_every_minutes_runs_once_for_missed_slots_and_keeps_its_series():
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    first = schedules.next_run_after(every_minutes=15, at=None, zone=NEW_YORK, after=start)
    # Down from 12:15 to 13:07: one run now, then the series goes on at 13:15 (not 13:22, not 12:30).
    after_outage = schedules.next_run_after(every_minutes=15, at=None, zone=NEW_YORK,
                                            after=datetime(2026, 6, 1, 13, 7, tzinfo=UTC), previous=first)

    assert first == datetime(2026, 6, 1, 12, 15, tzinfo=UTC)
    assert after_outage == datetime(2026, 6, 1, 13, 15, tzinfo=UTC)


@pytest.mark.parametrize(("after", "at", "expected"), [
    # 09:00 in New York is 14:00 UTC in winter (EST) and 13:00 UTC after the spring change (EDT).
    (datetime(2026, 3, 7, 15, 0, tzinfo=UTC), time(9, 0), datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),
    (datetime(2026, 3, 6, 15, 0, tzinfo=UTC), time(9, 0), datetime(2026, 3, 7, 14, 0, tzinfo=UTC)),
    # After the autumn change, back to 14:00 UTC.
    (datetime(2026, 10, 31, 15, 0, tzinfo=UTC), time(9, 0), datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),
    # 02:30 does not exist on 8 March 2026 in New York: it runs an hour later on the wall clock.
    (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), time(2, 30), datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
    # 01:30 happens twice on 1 November 2026: it runs the first time only, then the next day.
    (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), time(1, 30), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), time(1, 30), datetime(2026, 11, 2, 6, 30, tzinfo=UTC)),
    # Late in the local day but already tomorrow in UTC: still today's 23:00 local.
    (datetime(2026, 6, 2, 1, 0, tzinfo=UTC), time(23, 0), datetime(2026, 6, 2, 3, 0, tzinfo=UTC)),
])
def test_at_is_a_wall_clock_time_of_the_organizations_zone_across_dst(after, at, expected):
    assert schedules.next_run_after(every_minutes=None, at=at, zone=NEW_YORK, after=after) == expected


def test_changing_the_time_zone_moves_daily_schedules(agent, org):
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Hi", at="09:00")

    schedules.org_time_zone_change(org=org, time_zone="Asia/Tokyo")

    schedule.refresh_from_db()
    local = schedule.next_run_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute) == (9, 0)


# --- The claim -----------------------------------------------------------------------------------


def test_two_beats_claiming_one_slot_at_once_fire_it_once(agent, connection):
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Hi", every_minutes=5)
    due = timezone.now() - timedelta(seconds=1)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=due)
    start, results = threading.Barrier(4), []

    def beat():
        try:
            start.wait()
            results.append(schedules.schedule_fire(schedule_id=schedule.pk, due_at=due))
        finally:
            db.close()

    workers = [threading.Thread(target=beat) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(results) == [False, False, False, True]
    assert AgentRun.objects.filter(schedule=schedule).count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()
    assert schedules.schedules_fire_due() == 0  # the next tick finds nothing due


# --- The scheduled turn --------------------------------------------------------------------------


def test_inside_the_window_the_answer_goes_as_text_and_the_prompt_is_an_instruction(agent, connection, openai, kapso):
    make_thread(connection, last_inbound_at=timezone.now() - timedelta(hours=1), contact_name="Ana")
    openai.reply_text("Hi Ana, your table for two is booked for 8 pm tonight.")
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", every_minutes=60,
                                         prompt="Remind the contact of tonight's booking.")

    run = fire(schedule)

    assert run.status == "succeeded"
    (sent,) = Message.objects.filter(direction="outbound")
    assert sent.text == "Hi Ana, your table for two is booked for 8 pm tonight." and sent.type == "text"
    request = openai.last_body
    assert "Remind the contact of tonight's booking." in request["messages"][0]["content"]
    assert request["messages"][-1] == {"role": "user", "content": schedules.SCHEDULE_NUDGE}
    assert not any("Remind the contact" in str(m["content"]) for m in request["messages"][1:])
    assert (schedule.last_result, schedule.last_reason) == ("sent", "")


def test_outside_the_window_without_a_template_it_is_skipped_with_the_reason(agent, connection, openai, api):
    make_thread(connection, last_inbound_at=timezone.now() - timedelta(days=2))
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=30)

    run = fire(schedule)

    assert run.status == "skipped" and openai.requests == []
    assert not Message.objects.filter(direction="outbound").exists()
    shown = json_of(api.get(f"/api/v1/agents/{agent.pk}/schedules"))["results"][0]
    assert shown["last_result"] == "skipped" and "24-hour window" in shown["last_reason"]


def test_outside_the_window_the_template_carries_the_answer(agent, connection, openai, kapso):
    connection.business_account_id = "102290129340398"
    connection.save()
    kapso.templates = [ORDER_UPDATE]
    templates_sync(str(connection.pk))
    make_thread(connection, last_inbound_at=timezone.now() - timedelta(days=2))
    openai.reply_text("A-1001\nis on its way")
    schedule = schedules.schedule_create(
        agent=agent, contact="+15551234567", prompt="Tell them the number of their last order.", every_minutes=60,
        template={"name": "order_update", "language": "en_US", "variables": ["Maria", "{{reply}}"]})

    run = fire(schedule)

    assert run.status == "succeeded"
    (queued,) = Message.objects.filter(direction="outbound")
    assert queued.type == "template"
    assert queued.text == "Hi Maria, your order A-1001 is on its way has shipped.\nReply STOP to opt out"
    assert (schedule.last_result, schedule.last_reason) == ("template", "")


def test_a_template_without_reply_is_sent_as_written_with_no_model_call(agent, connection, openai, kapso):
    connection.business_account_id = "102290129340398"
    connection.save()
    kapso.templates = [ORDER_UPDATE]
    templates_sync(str(connection.pk))
    schedule = schedules.schedule_create(  # the contact never wrote: the thread is created
        agent=agent, contact="+15559876543", prompt="Weekly nudge.", every_minutes=60,
        template={"name": "order_update", "language": "en_US", "variables": ["Maria", "A-7"]})

    run = fire(schedule)

    assert run.status == "succeeded" and openai.requests == []
    assert Thread.objects.get(contact_phone="+15559876543").connection == connection
    assert Message.objects.get(direction="outbound").type == "template"


@pytest.mark.parametrize("case", ["human", "opted_out", "not_allowed"])
def test_a_thread_the_agent_must_not_answer_is_skipped_with_the_reason(agent, connection, openai, case):
    thread = make_thread(connection, last_inbound_at=timezone.now())
    if case == "human":
        Thread.objects.filter(pk=thread.pk).update(handoff="human")
    elif case == "opted_out":
        Thread.objects.filter(pk=thread.pk).update(opted_out_at=timezone.now())
    else:
        connection.allowed_contacts = ["+15550000001"]
        connection.save()
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=5)

    run = fire(schedule)

    assert run.status == "skipped" and openai.requests == []
    assert schedule.last_result == "skipped"
    assert {"human": "human mode", "opted_out": "opted out", "not_allowed": "allowed contacts"}[case] in \
        schedule.last_reason
    assert not Message.objects.filter(direction="outbound").exists()


def test_an_agent_on_no_number_records_why_nothing_ran(agent):
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=5)

    assert fire(schedule) is None
    assert schedule.last_result == "skipped" and "no connected WhatsApp number" in schedule.last_reason


# --- The dashboard -------------------------------------------------------------------------------


def test_an_admin_adds_pauses_and_deletes_a_schedule_on_the_agent_page(client, agent, org, connection):
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    org.time_zone = "Europe/Madrid"
    org.save()
    signed_in(client, make_user(org, "admin"))
    page = org_url("agent", org, agent_id=agent.pk)

    client.post(org_url("schedule-add", org, agent_id=agent.pk), {
        "contact": "+15551234567", "prompt": "Ask how the stay is going.", "kind": "at", "at": "18:30"})
    schedule = Schedule.objects.get()
    Schedule.objects.filter(pk=schedule.pk).update(last_run_at=timezone.now(), last_result="skipped",
                                                   last_reason="The contact opted out (they wrote STOP).")
    html = client.get(page).content.decode()

    assert "Every day at 18:30" in html and "Times in Europe/Madrid" in html
    assert f"Next run {schedule.next_run_at.astimezone(ZoneInfo('Europe/Madrid')):%a %-d %b}, 18:30" in html
    assert "The contact opted out (they wrote STOP)." in html and "skipped" in html
    client.post(org_url("schedule-pause", org, agent_id=agent.pk, schedule_id=schedule.pk))
    schedule.refresh_from_db()
    assert not schedule.enabled and "Paused" in client.get(page).content.decode()
    bad = client.post(org_url("schedule-add", org, agent_id=agent.pk), {
        "contact": "+15551234567", "prompt": "Hi", "kind": "at", "at": "7pm"}, follow=True)
    assert "HH:MM" in bad.content.decode() and Schedule.objects.count() == 1
    client.post(org_url("schedule-delete", org, agent_id=agent.pk, schedule_id=schedule.pk))
    assert not Schedule.objects.exists()


def test_the_settings_page_sets_the_time_zone_and_refuses_a_made_up_one(client, org):
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    signed_in(client, make_user(org, "admin"))
    url = org_url("org-settings", org)

    bad = client.post(url, {"form": "zone", "time_zone": "Mars/Olympus"})
    client.post(url, {"form": "zone", "time_zone": "America/Mexico_City"})

    assert bad.status_code == 400 and "is not a time zone" in bad.content.decode()
    org.refresh_from_db()
    assert org.time_zone == "America/Mexico_City"


def test_an_operator_cannot_change_the_time_zone(client, org):
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    signed_in(client, make_user(org, "operator"))

    assert client.post(org_url("org-settings", org), {"form": "zone", "time_zone": "Asia/Tokyo"}).status_code == 403
    org.refresh_from_db()
    assert org.time_zone == "UTC"


def test_a_scheduled_turn_whose_workers_keep_dying_fails_on_the_schedule_and_sends_nothing(agent, connection, settings):
    from apps.agents import services

    make_thread(connection, last_inbound_at=timezone.now())
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=5)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    schedules.schedules_fire_due()
    stale = timezone.now() - timedelta(seconds=settings.AGENT_RUN_STALE_SECONDS + 60)
    AgentRun.objects.filter(schedule=schedule).update(status="running", attempts=services.MAX_RUN_ATTEMPTS,
                                                      heartbeat_at=stale)

    services.runs_recover_stale()

    schedule.refresh_from_db()
    assert AgentRun.objects.get(schedule=schedule).status == "failed"
    assert schedule.last_result == "failed" and "interrupted" in schedule.last_reason
    assert not Message.objects.filter(direction="outbound").exists()


def test_a_used_up_budget_skips_the_scheduled_turn_with_the_reason_and_sends_nothing(agent, connection, org, openai):
    org.monthly_token_budget = 10
    org.save()
    thread = make_thread(connection, last_inbound_at=timezone.now())
    AgentRun.objects.create(org=org, thread=thread, agent=agent, status="succeeded", input_tokens=50, output_tokens=5)
    schedule = schedules.schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=5)

    run = fire(schedule)

    assert run.status == "skipped" and openai.requests == []
    assert schedule.last_result == "skipped" and "budget" in schedule.last_reason
    assert not Message.objects.filter(direction="outbound").exists()
