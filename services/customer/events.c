/* events.c: builds the fat events from a customer row. Everything points into `cu`
 * or the stack: nothing to free. meta.aggregate_id and meta.version are set here;
 * the outbox fills the rest (event id, type, time, source, correlation). */
#include "events.h"

#include "customer/v1/customer.warren.h"

static Customer__V1__CustomerStatus to_proto_status(customer_status s) {
  switch (s) {
  case CUSTOMER_ACTIVE:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_ACTIVE;
  case CUSTOMER_PENDING:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_PENDING;
  case CUSTOMER_SUSPENDED:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_SUSPENDED;
  case CUSTOMER_DELETED:
    return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_DELETED;
  }
  return CUSTOMER__V1__CUSTOMER_STATUS__CUSTOMER_STATUS_UNSPECIFIED;
}

/* The data part and its timestamps, filled from cu (borrowing its strings). */
typedef struct data_parts {
  Customer__V1__Customer data;
  Google__Protobuf__Timestamp created, updated;
  Warren__V1__EventMeta meta;
} data_parts;

static void fill(data_parts *p, const customer *cu) {
  customer__v1__customer__init(&p->data);
  google__protobuf__timestamp__init(&p->created);
  google__protobuf__timestamp__init(&p->updated);
  warren__v1__event_meta__init(&p->meta);
  p->created.seconds = cu->created_us / 1000000;
  p->created.nanos = (int32_t)(cu->created_us % 1000000) * 1000;
  p->updated.seconds = cu->updated_us / 1000000;
  p->updated.nanos = (int32_t)(cu->updated_us % 1000000) * 1000;
  p->data.id = (char *)cu->id;
  p->data.name = (char *)cu->name;
  p->data.email = (char *)cu->email;
  p->data.status = to_proto_status(cu->status);
  p->data.created_at = &p->created;
  p->data.updated_at = &p->updated;
  p->data.version = cu->version;
  p->meta.aggregate_id = (char *)cu->id;
  p->meta.version = cu->version;
}

int events_created(wr_outbox *ob, const customer *cu) {
  data_parts p;
  fill(&p, cu);
  Customer__V1__CustomerCreated ev = CUSTOMER__V1__CUSTOMER_CREATED__INIT;
  ev.meta = &p.meta;
  ev.data = &p.data;
  return customer_v1_customer_created_publish(ob, &ev);
}

int events_updated(wr_outbox *ob, const customer *cu, const field_change *changes, size_t n) {
  data_parts p;
  fill(&p, cu);
  Customer__V1__FieldChange fc[8];
  Customer__V1__FieldChange *fcp[8];
  if (n > 8)
    n = 8; /* a customer has three mutable fields */
  for (size_t i = 0; i < n; i++) {
    customer__v1__field_change__init(&fc[i]);
    fc[i].field = (char *)changes[i].field;
    fc[i].old_value = (char *)changes[i].old_value;
    fc[i].new_value = (char *)changes[i].new_value;
    fcp[i] = &fc[i];
  }
  Customer__V1__CustomerUpdated ev = CUSTOMER__V1__CUSTOMER_UPDATED__INIT;
  ev.meta = &p.meta;
  ev.data = &p.data;
  ev.n_changes = n;
  ev.changes = fcp;
  return customer_v1_customer_updated_publish(ob, &ev);
}

int events_deleted(wr_outbox *ob, const customer *cu, const char *reason, const char *deleted_by) {
  data_parts p;
  fill(&p, cu);
  Customer__V1__CustomerDeleted ev = CUSTOMER__V1__CUSTOMER_DELETED__INIT;
  ev.meta = &p.meta;
  ev.reason = (char *)(reason ? reason : "");
  ev.deleted_by = (char *)(deleted_by ? deleted_by : "");
  return customer_v1_customer_deleted_publish(ob, &ev);
}

int events_snapshot(wr_outbox *ob, const customer *cu) {
  data_parts p;
  fill(&p, cu);
  Customer__V1__CustomerSnapshot ev = CUSTOMER__V1__CUSTOMER_SNAPSHOT__INIT;
  ev.meta = &p.meta;
  ev.data = &p.data;
  return customer_v1_customer_snapshot_publish(ob, &ev);
}
