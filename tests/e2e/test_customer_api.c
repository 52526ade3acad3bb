// warren-test: link=warren_devkit,warren_schemas timeout=600
/* The customer service's single-customer REST API, as a client and a consumer see
 * it: POST/GET/PATCH/DELETE /customers with every error case, If-Match, the events
 * each change puts on customer.events (taken from a test queue bound to the exchange
 * and decoded), correlation ids from the request header to meta.correlation_id,
 * "a PATCH that changes nothing emits nothing", the request limits (413, 415, 400),
 * snapshots (403/401/200 and one CustomerSnapshot per customer), /healthz, /readyz
 * and /metrics. */
#include "e2e.h"

#define TAP "e2e.tap.customer"

static const char *const TOKEN_ENV[] = {"WARREN_ADMIN_TOKEN=" E2E_TOKEN, NULL};

static e2e *start(void **state) {
  e2e *e = *state;
  e2e_tap(e, TAP, CUSTOMER_V1_EXCHANGE);
  e2e_start_customer(e, TOKEN_ENV);
  return e;
}

static int setup(void **state) {
  return e2e_setup_state(state, "customer_api");
}

/* The next event on the tap, which must be of `type`; fails if none arrives. */
static void next_event(e2e *e, const char *type, e2e_event *ev) {
  if (!e2e_next_event(e, TAP, 30000, ev)) {
    dk_tail(e->customer.log_path, 20);
    fail_msg("no %s event arrived on the tap", type);
  }
  if (strcmp(ev->type, type) != 0)
    fail_msg("expected a %s event, got %s", type, ev->type);
}

/* The outbox's high-water mark: ids only grow, so an unchanged value after a request
 * means the request appended no event (rows are deleted once published). */
static long long outbox_hwm(e2e *e) {
  return e2e_scalar(e->customer_db, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                                    " FROM warren_outbox_id_seq");
}

static void assert_customer_data(const Customer__V1__Customer *d, json_t *c) {
  assert_non_null(d);
  assert_string_equal(d->id, e2e_str(c, "id"));
  assert_string_equal(d->name, e2e_str(c, "name"));
  assert_string_equal(d->email, e2e_str(c, "email"));
  assert_int_equal(d->version, e2e_int(c, "version"));
  assert_non_null(d->created_at);
  assert_non_null(d->updated_at);
  char ts[WR_RFC3339_STRLEN];
  wr_rfc3339_format(d->updated_at->seconds, d->updated_at->nanos, ts);
  assert_string_equal(ts, e2e_str(c, "updated_at"));
  wr_rfc3339_format(d->created_at->seconds, d->created_at->nanos, ts);
  assert_string_equal(ts, e2e_str(c, "created_at"));
}

/* ---- create and read -------------------------------------------------------------- */

/* POST -> 201 with the full representation, Location and ETag; GET returns the same;
 * the CustomerCreated event carries the state, the header's correlation id, and the
 * metadata the outbox fills in. */
static void create_get_and_event(void **state) {
  e2e *e = start(state);
  const char *h[] = {"X-Correlation-Id: e2e-create-1", NULL};
  e2e_resp r =
      e2e_json("POST", e->customer.url, "/customers",
               json_pack("{s:s,s:s}", "name", "Ada Lovelace", "email", "ada@example.org"), h);
  E2E_EXPECT(r, 201, NULL);
  char v[256];
  assert_string_equal(e2e_header(&r, "X-Correlation-Id", v, sizeof v), "e2e-create-1");
  assert_string_equal(e2e_header(&r, "ETag", v, sizeof v), "\"1\"");
  json_t *c = json_incref(r.json);
  const char *id = e2e_str(c, "id");
  assert_true(wr_uuid_valid(id));
  char loc[128];
  snprintf(loc, sizeof loc, "/customers/%s", id);
  assert_string_equal(e2e_header(&r, "Location", v, sizeof v), loc);
  assert_string_equal(e2e_str(c, "name"), "Ada Lovelace");
  assert_string_equal(e2e_str(c, "email"), "ada@example.org");
  assert_string_equal(e2e_str(c, "status"), "active"); /* the default */
  assert_int_equal(e2e_int(c, "version"), 1);
  assert_int_equal(json_object_size(c), 7);
  int64_t s1, s2;
  int32_t n1, n2;
  assert_int_equal(wr_rfc3339_parse(e2e_str(c, "created_at"), &s1, &n1), 0);
  assert_int_equal(wr_rfc3339_parse(e2e_str(c, "updated_at"), &s2, &n2), 0);
  e2e_resp_free(&r);

  r = e2e_json("GET", e->customer.url, loc, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_true(json_equal(r.json, c));
  assert_string_equal(e2e_header(&r, "ETag", v, sizeof v), "\"1\"");
  e2e_resp_free(&r);

  e2e_event ev;
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  assert_string_equal(ev.routing_key, CUSTOMER_V1_CUSTOMER_CREATED_TYPE);
  assert_string_equal(ev.content_type, "application/x-protobuf");
  const wr_meta *m = ev.meta;
  assert_string_equal(ev.message_id, m->event_id);
  assert_true(wr_uuid_valid(m->event_id));
  assert_string_equal(m->event_type, CUSTOMER_V1_CUSTOMER_CREATED_TYPE);
  assert_string_equal(m->aggregate_type, "customer");
  assert_string_equal(m->aggregate_id, id);
  assert_int_equal(m->version, 1);
  assert_string_equal(m->correlation_id, "e2e-create-1");
  assert_string_equal(m->causation_id, ""); /* caused by a request, not an event */
  assert_string_equal(m->source_service, "customer");
  assert_non_null(m->occurred_at);
  assert_customer_data(((Customer__V1__CustomerCreated *)ev.msg)->data, c);
  assert_int_equal(((Customer__V1__CustomerCreated *)ev.msg)->data->status,
                   CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE);
  e2e_event_free(&ev);

  /* status given explicitly */
  json_t *p = e2e_create_customer(e, "Grace Hopper", "grace@example.org", "pending");
  assert_string_equal(e2e_str(p, "status"), "pending");
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  assert_int_equal(((Customer__V1__CustomerCreated *)ev.msg)->data->status,
                   CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING);
  e2e_event_free(&ev);
  json_decref(p);

  /* unknown ids: 404 with a JSON error */
  r = e2e_json("GET", e->customer.url, "/customers/0190a000-0000-7000-8000-000000000000", NULL,
               NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/customers/not-a-uuid-at-all", NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  json_decref(c);
}

/* Without X-Correlation-Id the service generates one, echoes it, and the event carries
 * it; an invalid header value is replaced, never copied into an event. */
static void correlation_generated(void **state) {
  e2e *e = start(state);
  const char *const bad[] = {"X-Correlation-Id: has spaces in it", NULL};
  const char *const *cases[] = {NULL, bad};
  for (int i = 0; i < 2; i++) {
    char email[64];
    snprintf(email, sizeof email, "corr%d@example.org", i);
    e2e_resp r = e2e_json("POST", e->customer.url, "/customers",
                          json_pack("{s:s,s:s}", "name", "Corr", "email", email), cases[i]);
    E2E_EXPECT(r, 201, NULL);
    char corr[256];
    e2e_header(&r, "X-Correlation-Id", corr, sizeof corr);
    assert_true(wr_uuid_valid(corr));
    e2e_event ev;
    next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
    assert_string_equal(ev.meta->correlation_id, corr);
    e2e_event_free(&ev);
    e2e_resp_free(&r);
  }
}

/* Every way a create body can be wrong, each with its status and error code, and the
 * exact limits (name 200 characters, e-mail 254 bytes) accepted. Nothing refused
 * reaches the outbox. */
static void create_validation(void **state) {
  e2e *e = start(state);
  long long hwm0 = outbox_hwm(e);
  char name201[1024] = "", email255[300];
  for (int i = 0; i < 201; i++)
    strcat(name201, "\xc3\xa9"); /* é: 2 bytes, 1 character */
  /* local part 64 + '@' + 63.63.57.org = 254 bytes; one more letter = 255 */
  char local[65], l63[64], l57[58];
  memset(local, 'a', 64);
  local[64] = 0;
  memset(l63, 'b', 63);
  l63[63] = 0;
  memset(l57, 'c', 57);
  l57[57] = 0;
  snprintf(email255, sizeof email255, "%s@%s.%s.%sx.org", local, l63, l63, l57);
  assert_int_equal(strlen(email255), 255);
  struct {
    const char *body;
    int status;
    const char *code;
  } cases[] = {
      {"{\"email\":\"a@example.org\"}", 422, "missing_field"},
      {"{\"name\":\"A\"}", 422, "missing_field"},
      {"{\"name\":\"\",\"email\":\"a@example.org\"}", 422, "invalid_value"},
      {"{\"name\":42,\"email\":\"a@example.org\"}", 422, "invalid_type"},
      {"{\"name\":null,\"email\":\"a@example.org\"}", 422, "missing_field"}, /* null = absent */
      {"{\"name\":\"A\\u0007B\",\"email\":\"a@example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@example.org\",\"nickname\":\"x\"}", 422, "unknown_field"},
      {"{\"name\":\"A\",\"email\":\"a@example.org\",\"id\":\"x\"}", 422, "unknown_field"},
      {"{\"name\":\"A\",\"email\":\"a@example.org\",\"version\":7}", 422, "unknown_field"},
      {"{\"name\":\"A\",\"email\":\"a@example.org\",\"status\":\"deleted\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@example.org\",\"status\":\"ACTIVE\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@example.org\",\"status\":1}", 422, "invalid_type"},
      {"{\"name\":\"A\",\"email\":\"no-at-sign.example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@@example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@b@example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@localhost\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"@example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a..b@example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a b@example.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@exa_mple.org\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@example.o\"}", 422, "invalid_value"},
      {"{\"name\":\"A\",\"email\":\"a@-example.org\"}", 422, "invalid_value"},
      /* not JSON objects */
      {"", 400, "invalid_json"},
      {"{\"name\":", 400, "invalid_json"},
      {"[1,2]", 400, "invalid_json"},
      {"\"just a string\"", 400, "invalid_json"},
      {"{\"name\":\"A\",\"name\":\"B\",\"email\":\"a@example.org\"}", 400, "invalid_json"},
      {"{\"name\":\"\xff\xfe\",\"email\":\"a@example.org\"}", 400, "invalid_json"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    e2e_resp r = e2e_raw("POST", e->customer.url, "/customers", cases[i].body,
                         strlen(cases[i].body), "application/json", NULL);
    if (r.status != cases[i].status || strcmp(e2e_error_code(&r), cases[i].code) != 0)
      fail_msg("case %zu %s: expected %d %s, got %d %s", i, cases[i].body, cases[i].status,
               cases[i].code, r.status, r.body ? r.body : "");
    assert_non_null(json_object_get(json_object_get(r.json, "error"), "message"));
    e2e_resp_free(&r);
  }
  /* limits: name of 201 characters, e-mail of 255 bytes refused */
  e2e_resp r = e2e_json("POST", e->customer.url, "/customers",
                        json_pack("{s:s,s:s}", "name", name201, "email", "a@example.org"), NULL);
  E2E_EXPECT(r, 422, "invalid_value");
  e2e_resp_free(&r);
  r = e2e_json("POST", e->customer.url, "/customers",
               json_pack("{s:s,s:s}", "name", "A", "email", email255), NULL);
  E2E_EXPECT(r, 422, "invalid_value");
  e2e_resp_free(&r);
  assert_int_equal(outbox_hwm(e), hwm0);
  assert_int_equal(e2e_scalar(e->customer_db, "SELECT count(*) FROM customers"), 0);

  /* ...and exactly at the limits accepted, stored and emitted byte for byte */
  name201[strlen(name201) - 2] = '\0'; /* 200 characters, 400 bytes */
  email255[strlen(email255) - 5] = '\0';
  strcat(email255, ".org"); /* 254 bytes */
  assert_int_equal(strlen(email255), 254);
  json_t *c = e2e_create_customer(e, name201, email255, "suspended");
  assert_string_equal(e2e_str(c, "name"), name201);
  assert_string_equal(e2e_str(c, "email"), email255);
  e2e_event ev;
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  assert_customer_data(((Customer__V1__CustomerCreated *)ev.msg)->data, c);
  e2e_event_free(&ev);
  json_decref(c);
}

/* The transport-level refusals: Content-Type (415), body size (413), methods (405),
 * unknown paths (404), malformed targets (400); all JSON, all with a correlation id. */
static void request_limits(void **state) {
  e2e *e = start(state);
  const char *ok = "{\"name\":\"A\",\"email\":\"a@example.org\"}";
  e2e_resp r = e2e_raw("POST", e->customer.url, "/customers", ok, strlen(ok), NULL, NULL);
  E2E_EXPECT(r, 415, "unsupported_media_type");
  e2e_resp_free(&r);
  r = e2e_raw("POST", e->customer.url, "/customers", ok, strlen(ok), "text/plain", NULL);
  E2E_EXPECT(r, 415, "unsupported_media_type");
  e2e_resp_free(&r);
  r = e2e_raw("POST", e->customer.url, "/customers", ok, strlen(ok),
              "application/json; charset=latin1", NULL);
  E2E_EXPECT(r, 415, "unsupported_media_type");
  e2e_resp_free(&r);
  r = e2e_raw("POST", e->customer.url, "/customers", ok, strlen(ok),
              "application/json; charset=utf-8", NULL);
  E2E_EXPECT(r, 201, NULL);
  e2e_resp_free(&r);

  /* 64 KiB is the default limit: one byte more is refused before it is read */
  size_t big = 64 * 1024 + 1;
  char *body = malloc(big + 1);
  memset(body, ' ', big);
  memcpy(body, ok, strlen(ok));
  body[big] = 0;
  r = e2e_raw("POST", e->customer.url, "/customers", body, big, "application/json", NULL);
  E2E_EXPECT(r, 413, "payload_too_large");
  char corr[160];
  assert_true(strlen(e2e_header(&r, "X-Correlation-Id", corr, sizeof corr)) > 0);
  e2e_resp_free(&r);
  /* exactly 64 KiB (padding after the object) is still parsed */
  r = e2e_raw("POST", e->customer.url, "/customers", body, big - 1, "application/json", NULL);
  E2E_EXPECT(r, 201, NULL);
  e2e_resp_free(&r);
  r = e2e_raw("PATCH", e->customer.url, "/customers/x", body, big, "application/json", NULL);
  E2E_EXPECT(r, 413, "payload_too_large");
  e2e_resp_free(&r);
  free(body);

  r = e2e_json("PUT", e->customer.url, "/customers", json_object(), NULL);
  E2E_EXPECT(r, 405, "method_not_allowed");
  char allow[128];
  e2e_header(&r, "Allow", allow, sizeof allow);
  assert_non_null(strstr(allow, "GET"));
  assert_non_null(strstr(allow, "POST"));
  e2e_resp_free(&r);
  r = e2e_json("POST", e->customer.url, "/customers/x", json_object(), NULL);
  E2E_EXPECT(r, 405, "method_not_allowed");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/nowhere", NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/customers/", NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/customers/%ff%fe", NULL, NULL);
  E2E_EXPECT(r, 400, "bad_request");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/customers/a%00b", NULL, NULL);
  E2E_EXPECT(r, 400, "bad_request");
  e2e_resp_free(&r);
  /* an id longer than any stored one is simply not found */
  char path[700] = "/customers/";
  memset(path + 11, 'x', 600);
  path[611] = 0;
  r = e2e_json("GET", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
}

/* ---- update ------------------------------------------------------------------------ */

static e2e_resp patch(e2e *e, const char *id, json_t *body, const char *if_match) {
  char path[128], im[128];
  snprintf(path, sizeof path, "/customers/%s", id);
  snprintf(im, sizeof im, "If-Match: %s", if_match ? if_match : "");
  const char *h[] = {im, "X-Correlation-Id: e2e-patch", NULL};
  return e2e_json("PATCH", e->customer.url, path, body, if_match ? h : h + 1);
}

/* PATCH changes what is given, bumps the version, emits CustomerUpdated with the
 * changes and the full state; If-Match guards the version (409), and a PATCH that
 * changes nothing answers 200 and emits nothing at all. */
static void patch_and_if_match(void **state) {
  e2e *e = start(state);
  json_t *c = e2e_create_customer(e, "Ada", "ada@example.org", NULL);
  const char *id = e2e_str(c, "id");
  e2e_event ev;
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  e2e_event_free(&ev);

  e2e_resp r =
      patch(e, id, json_pack("{s:s,s:s}", "name", "Ada Lovelace", "status", "suspended"), "\"1\"");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "version"), 2);
  assert_string_equal(e2e_str(r.json, "name"), "Ada Lovelace");
  assert_string_equal(e2e_str(r.json, "status"), "suspended");
  assert_string_equal(e2e_str(r.json, "email"), "ada@example.org");
  assert_string_equal(e2e_str(r.json, "created_at"), e2e_str(c, "created_at"));
  char etag[32];
  assert_string_equal(e2e_header(&r, "ETag", etag, sizeof etag), "\"2\"");
  json_t *v2 = json_incref(r.json);
  e2e_resp_free(&r);
  next_event(e, CUSTOMER_V1_CUSTOMER_UPDATED_TYPE, &ev);
  Customer__V1__CustomerUpdated *u = (Customer__V1__CustomerUpdated *)ev.msg;
  assert_int_equal(ev.meta->version, 2);
  assert_string_equal(ev.meta->correlation_id, "e2e-patch");
  assert_customer_data(u->data, v2);
  assert_int_equal(u->data->status, CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED);
  assert_int_equal(u->n_changes, 2);
  assert_string_equal(u->changes[0]->field, "name");
  assert_string_equal(u->changes[0]->old_value, "Ada");
  assert_string_equal(u->changes[0]->new_value, "Ada Lovelace");
  assert_string_equal(u->changes[1]->field, "status");
  assert_string_equal(u->changes[1]->old_value, "active");
  assert_string_equal(u->changes[1]->new_value, "suspended");
  e2e_event_free(&ev);

  /* If-Match without quotes is accepted; a stale one is 409 and changes nothing */
  r = patch(e, id, json_pack("{s:s}", "email", "ada@lovelace.org"), "2");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "version"), 3);
  e2e_resp_free(&r);
  next_event(e, CUSTOMER_V1_CUSTOMER_UPDATED_TYPE, &ev);
  assert_int_equal(((Customer__V1__CustomerUpdated *)ev.msg)->n_changes, 1);
  e2e_event_free(&ev);
  long long hwm = outbox_hwm(e);
  r = patch(e, id, json_pack("{s:s}", "name", "Stale writer"), "\"2\"");
  E2E_EXPECT(r, 409, "version_conflict");
  e2e_resp_free(&r);
  const char *bad_tags[] = {"W/\"3\"", "\"three\"", "\"\"", "\"-1\"", "\"3", "*"};
  for (size_t i = 0; i < sizeof bad_tags / sizeof bad_tags[0]; i++) {
    r = patch(e, id, json_pack("{s:s}", "name", "Bad tag"), bad_tags[i]);
    if (r.status != 400 || strcmp(e2e_error_code(&r), "invalid_header") != 0)
      fail_msg("If-Match %s: expected 400 invalid_header, got %d %s", bad_tags[i], r.status,
               r.body);
    e2e_resp_free(&r);
  }

  /* a PATCH that changes nothing: 200, same version, no event (outbox and broker) */
  r = patch(e, id, json_pack("{s:s,s:s}", "name", "Ada Lovelace", "status", "suspended"), "\"3\"");
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "version"), 3);
  e2e_resp_free(&r);
  r = patch(e, id, json_object(), NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "version"), 3);
  e2e_resp_free(&r);
  assert_int_equal(outbox_hwm(e), hwm);
  /* the next real change is the very next message on the tap: nothing came between */
  r = patch(e, id, json_pack("{s:s}", "status", "active"), NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "version"), 4);
  e2e_resp_free(&r);
  next_event(e, CUSTOMER_V1_CUSTOMER_UPDATED_TYPE, &ev);
  assert_int_equal(ev.meta->version, 4);
  e2e_event_free(&ev);
  assert_int_equal(e2e_depth(e, TAP), 0);

  /* invalid values and unknown fields: 422, nothing changes */
  const char *bodies[][2] = {
      {"{\"status\":\"deleted\"}", "invalid_value"},
      {"{\"status\":\"gone\"}", "invalid_value"},
      {"{\"email\":\"not-an-email\"}", "invalid_value"},
      {"{\"name\":\"\"}", "invalid_value"},
      {"{\"name\":[]}", "invalid_type"},
      {"{\"version\":9}", "unknown_field"},
      {"{\"name\":\"X\",\"color\":\"red\"}", "unknown_field"},
  };
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "/customers/%s", id);
    r = e2e_raw("PATCH", e->customer.url, path, bodies[i][0], strlen(bodies[i][0]),
                "application/json", NULL);
    if (r.status != 422 || strcmp(e2e_error_code(&r), bodies[i][1]) != 0)
      fail_msg("PATCH %s: expected 422 %s, got %d %s", bodies[i][0], bodies[i][1], r.status,
               r.body);
    e2e_resp_free(&r);
  }
  r = patch(e, "0190a000-0000-7000-8000-00000000beef", json_pack("{s:s}", "name", "N"), NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", id);
  r = e2e_json("GET", e->customer.url, path, NULL, NULL);
  assert_int_equal(e2e_int(r.json, "version"), 4);
  assert_string_equal(e2e_str(r.json, "name"), "Ada Lovelace");
  e2e_resp_free(&r);
  json_decref(v2);
  json_decref(c);
}

/* ---- delete ------------------------------------------------------------------------ */

/* DELETE -> 204 and a tombstone (status deleted, version + 1, still in the bulk API),
 * CustomerDeleted with reason and actor; afterwards GET/PATCH/DELETE answer 404. */
static void delete_tombstone(void **state) {
  e2e *e = start(state);
  json_t *c = e2e_create_customer(e, "Linus", "linus@example.org", NULL);
  const char *id = e2e_str(c, "id");
  e2e_event ev;
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  e2e_event_free(&ev);
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", id);

  const char *stale[] = {"If-Match: \"7\"", NULL};
  e2e_resp r = e2e_json("DELETE", e->customer.url, path, NULL, stale);
  E2E_EXPECT(r, 409, "version_conflict");
  e2e_resp_free(&r);
  r = e2e_json("DELETE", e->customer.url, path, json_pack("{s:s}", "why", "x"), NULL);
  E2E_EXPECT(r, 422, "unknown_field");
  e2e_resp_free(&r);
  r = e2e_json("DELETE", e->customer.url, path, json_pack("{s:i}", "reason", 5), NULL);
  E2E_EXPECT(r, 422, "invalid_type");
  e2e_resp_free(&r);
  const char *bad_actor[] = {"X-Actor: bad\x01value", NULL};
  r = e2e_json("DELETE", e->customer.url, path, NULL, bad_actor);
  E2E_EXPECT(r, 400, "invalid_header");
  e2e_resp_free(&r);

  const char *h[] = {"If-Match: \"1\"", "X-Actor: support-desk", "X-Correlation-Id: e2e-del", NULL};
  r = e2e_json("DELETE", e->customer.url, path, json_pack("{s:s}", "reason", "closed account"), h);
  E2E_EXPECT(r, 204, NULL);
  assert_int_equal(r.len, 0);
  e2e_resp_free(&r);
  next_event(e, CUSTOMER_V1_CUSTOMER_DELETED_TYPE, &ev);
  Customer__V1__CustomerDeleted *d = (Customer__V1__CustomerDeleted *)ev.msg;
  assert_string_equal(ev.meta->aggregate_id, id);
  assert_int_equal(ev.meta->version, 2);
  assert_string_equal(ev.meta->correlation_id, "e2e-del");
  assert_string_equal(d->reason, "closed account");
  assert_string_equal(d->deleted_by, "support-desk");
  e2e_event_free(&ev);

  r = e2e_json("GET", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("PATCH", e->customer.url, path, json_pack("{s:s}", "name", "Back"), NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  r = e2e_json("DELETE", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 404, "not_found");
  e2e_resp_free(&r);
  /* the tombstone stays in the bulk API so consumers learn the deletion */
  char q[160];
  snprintf(q, sizeof q, "/customers?ids=%s", id);
  r = e2e_json("GET", e->customer.url, q, NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  json_t *item = json_array_get(json_object_get(r.json, "items"), 0);
  assert_string_equal(e2e_str(item, "status"), "deleted");
  assert_int_equal(e2e_int(item, "version"), 2);
  assert_string_equal(e2e_str(item, "name"), "Linus");
  e2e_resp_free(&r);

  /* a delete without body or actor: deleted_by "api", reason empty */
  json_t *c2 = e2e_create_customer(e, "Tmp", "tmp@example.org", NULL);
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  e2e_event_free(&ev);
  snprintf(path, sizeof path, "/customers/%s", e2e_str(c2, "id"));
  r = e2e_raw("DELETE", e->customer.url, path, NULL, 0, NULL, NULL);
  E2E_EXPECT(r, 204, NULL);
  e2e_resp_free(&r);
  next_event(e, CUSTOMER_V1_CUSTOMER_DELETED_TYPE, &ev);
  assert_string_equal(((Customer__V1__CustomerDeleted *)ev.msg)->deleted_by, "api");
  assert_string_equal(((Customer__V1__CustomerDeleted *)ev.msg)->reason, "");
  e2e_event_free(&ev);
  json_decref(c2);
  json_decref(c);
}

/* ---- snapshots ---------------------------------------------------------------------- */

/* POST /admin/snapshots: 401 without or with a wrong bearer token, 200 with the right
 * one, emitting exactly one CustomerSnapshot per customer (tombstones included) with
 * its current state, all under the request's correlation id. */
static void snapshots(void **state) {
  e2e *e = start(state);
  enum { N = 25 };
  json_t *cs[N];
  for (int i = 0; i < N; i++) {
    char name[32], email[64];
    snprintf(name, sizeof name, "Snap %d", i);
    snprintf(email, sizeof email, "snap%d@example.org", i);
    cs[i] = e2e_create_customer(e, name, email, i % 3 == 0 ? "pending" : NULL);
  }
  /* one updated, one deleted: the snapshot shows the current state */
  char path[128];
  snprintf(path, sizeof path, "/customers/%s", e2e_str(cs[1], "id"));
  e2e_resp r =
      e2e_json("PATCH", e->customer.url, path, json_pack("{s:s}", "name", "Renamed"), NULL);
  E2E_EXPECT(r, 200, NULL);
  json_decref(cs[1]);
  cs[1] = json_incref(r.json);
  e2e_resp_free(&r);
  snprintf(path, sizeof path, "/customers/%s", e2e_str(cs[2], "id"));
  r = e2e_json("DELETE", e->customer.url, path, NULL, NULL);
  E2E_EXPECT(r, 204, NULL);
  e2e_resp_free(&r);
  json_object_set_new(cs[2], "status", json_string("deleted"));
  json_object_set_new(cs[2], "version", json_integer(2));
  /* drain the change events */
  for (int i = 0; i < N + 2; i++) {
    e2e_event ev;
    assert_true(e2e_next_event(e, TAP, 30000, &ev));
    e2e_event_free(&ev);
  }

  r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, NULL);
  E2E_EXPECT(r, 401, "unauthorized");
  char www[128];
  assert_non_null(strstr(e2e_header(&r, "WWW-Authenticate", www, sizeof www), "Bearer"));
  e2e_resp_free(&r);
  const char *wrong[] = {"Authorization: Bearer not-the-token", NULL};
  r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, wrong);
  E2E_EXPECT(r, 401, "unauthorized");
  e2e_resp_free(&r);
  const char *basic[] = {"Authorization: Basic ZTJlOmUyZQ==", NULL};
  r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, basic);
  E2E_EXPECT(r, 401, "unauthorized");
  e2e_resp_free(&r);
  const char *auth[] = {"Authorization: Bearer " E2E_TOKEN, "X-Correlation-Id: e2e-snapshot", NULL};
  r = e2e_json("POST", e->customer.url, "/admin/snapshots", json_pack("{s:b}", "all", 1), auth);
  E2E_EXPECT(r, 422, "unknown_field");
  e2e_resp_free(&r);
  assert_int_equal(e2e_depth(e, TAP), 0);

  r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, auth);
  E2E_EXPECT(r, 200, NULL);
  assert_int_equal(e2e_int(r.json, "emitted"), N);
  e2e_resp_free(&r);
  json_t *seen = json_object();
  for (int i = 0; i < N; i++) {
    e2e_event ev;
    if (!e2e_next_event(e, TAP, 30000, &ev))
      fail_msg("only %d of %d snapshots arrived", i, N);
    assert_string_equal(ev.type, CUSTOMER_V1_CUSTOMER_SNAPSHOT_TYPE);
    assert_string_equal(ev.meta->correlation_id, "e2e-snapshot");
    Customer__V1__CustomerSnapshot *s = (Customer__V1__CustomerSnapshot *)ev.msg;
    assert_null(json_object_get(seen, s->data->id)); /* one per customer */
    json_object_set_new(seen, s->data->id, json_true());
    int k = 0;
    while (k < N && strcmp(e2e_str(cs[k], "id"), s->data->id) != 0)
      k++;
    assert_true(k < N);
    assert_int_equal(s->data->version, e2e_int(cs[k], "version"));
    assert_int_equal(ev.meta->version, s->data->version);
    assert_string_equal(s->data->name, e2e_str(cs[k], "name"));
    assert_int_equal(s->data->status,
                     k == 2       ? CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED
                     : k % 3 == 0 ? CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING
                                  : CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE);
    e2e_event_free(&ev);
  }
  assert_int_equal(json_object_size(seen), N);
  json_decref(seen);
  /* and not one more */
  e2e_event extra;
  assert_false(e2e_next_event(e, TAP, 1000, &extra));
  assert_int_equal(e2e_metric(&e->customer, "customer_snapshot_events_total"), N);
  for (int i = 0; i < N; i++)
    json_decref(cs[i]);
}

/* Without WARREN_ADMIN_TOKEN admin routes are closed: 403 whatever is sent. */
static void snapshots_without_token(void **state) {
  e2e *e = *state;
  e2e_start_customer(e, NULL);
  const char *auth[] = {"Authorization: Bearer " E2E_TOKEN, NULL};
  e2e_resp r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, auth);
  E2E_EXPECT(r, 403, "forbidden");
  e2e_resp_free(&r);
  r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, NULL);
  E2E_EXPECT(r, 403, "forbidden");
  e2e_resp_free(&r);
  /* an empty token counts as none */
  assert_int_equal(e2e_stop(&e->customer), 0);
  const char *empty[] = {"WARREN_ADMIN_TOKEN=", NULL};
  e2e_start_customer(e, empty);
  r = e2e_json("POST", e->customer.url, "/admin/snapshots", NULL, NULL);
  E2E_EXPECT(r, 403, "forbidden");
  e2e_resp_free(&r);
}

/* ---- health, readiness, metrics ----------------------------------------------------- */

static void health_and_metrics(void **state) {
  e2e *e = start(state);
  e2e_resp r = e2e_json("GET", e->customer.url, "/healthz", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_string_equal(e2e_str(r.json, "status"), "ok");
  e2e_resp_free(&r);
  r = e2e_json("GET", e->customer.url, "/readyz", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  assert_string_equal(e2e_str(r.json, "status"), "ready");
  e2e_resp_free(&r);
  json_t *c = e2e_create_customer(e, "Metric", "metric@example.org", NULL);
  json_decref(c);
  e2e_event ev;
  next_event(e, CUSTOMER_V1_CUSTOMER_CREATED_TYPE, &ev);
  e2e_event_free(&ev);

  r = e2e_json("GET", e->customer.url, "/metrics", NULL, NULL);
  E2E_EXPECT(r, 200, NULL);
  char ct[128];
  assert_ptr_equal(
      strstr(e2e_header(&r, "Content-Type", ct, sizeof ct), "text/plain; version=0.0.4"), ct);
  const char *expect[] = {
      "# TYPE warren_outbox_pending gauge",
      "# TYPE warren_outbox_published_total counter",
      "# TYPE warren_publish_confirm_seconds histogram",
      "# TYPE warren_http_requests_total counter",
      "# TYPE warren_http_request_duration_seconds histogram",
      "# TYPE customer_snapshot_events_total counter",
      "warren_http_requests_total{route=\"/customers\",method=\"POST\",status=\"201\"} 1",
  };
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
    if (!strstr(r.body, expect[i]))
      fail_msg("/metrics lacks \"%s\":\n%s", expect[i], r.body);
  e2e_resp_free(&r);
  /* the relay counts what it published once its batch is settled */
  e2e_wait_metric(&e->customer, "warren_outbox_published_total", 1, 30000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(create_get_and_event, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(correlation_generated, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(create_validation, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(request_limits, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(patch_and_if_match, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(delete_tombstone, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(snapshots, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(snapshots_without_token, setup, e2e_teardown_state),
      cmocka_unit_test_setup_teardown(health_and_metrics, setup, e2e_teardown_state),
  };
  return cmocka_run_group_tests_name("e2e customer api", tests, NULL, NULL);
}
