/* The user program: uses the generated tables, types and wrappers of shop.v1 and links
 * against the installed libwarren. Prints "ok" and exits 0 when everything holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <warren/warren.h>

#include "shop/v1/money.warren.h"
#include "shop/v1/shop.warren.h"

static int on_item_added(wr_msg *m, const Shop__V1__ItemAdded *ev, void *user) {
  return 0;
}

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "check failed: %s\n", #cond);                                                \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(void) {
  CHECK(wr_schema_register(&shop_v1_schema) == 0);
  const wr_event_type *t = wr_schema_find_event(SHOP_V1_ITEM_ADDED_TYPE);
  CHECK(t == SHOP_V1_ITEM_ADDED_EVENT);
  CHECK(strcmp(t->exchange, "shop.events") == 0);
  CHECK(t->kind == WR_KIND_UPDATED);

  Shop__V1__Money price = SHOP__V1__MONEY__INIT;
  price.cents = 1999;
  price.currency = "EUR";
  Shop__V1__Item item = SHOP__V1__ITEM__INIT;
  item.sku = "sku-1";
  item.price = &price;
  Warren__V1__EventMeta meta = WARREN__V1__EVENT_META__INIT;
  meta.aggregate_id = "cart-1";
  meta.version = 1;
  Shop__V1__ItemAdded ev = SHOP__V1__ITEM_ADDED__INIT;
  ev.meta = &meta;
  ev.item = &item;
  uint8_t buf[256];
  size_t len = shop__v1__item_added__pack(&ev, buf);
  Shop__V1__ItemAdded *back = shop__v1__item_added__unpack(NULL, len, buf);
  CHECK(back != NULL && back->item->price->cents == 1999);
  shop__v1__item_added__free_unpacked(back, NULL);

  char *json = NULL;
  CHECK(wr_json_encode_string(&ev.base, 0, &json, NULL) == 0);
  CHECK(strstr(json, "\"aggregateId\":\"cart-1\"") != NULL);
  free(json);

  CHECK(shop_v1_item_added_publish(NULL, &ev) == WR_EINVAL);
  shop_v1_handlers h = {.on_item_added = on_item_added};
  CHECK(shop_v1_subscribe(NULL, &h, NULL) == WR_EINVAL);
  puts("ok");
  return 0;
}
