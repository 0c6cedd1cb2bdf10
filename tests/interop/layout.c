/*
 * Prints the layout of struct hv_kvp_msg as the installed kernel header
 * (linux-libc-dev: /usr/include/linux/hyperv.h) defines it, one "name value"
 * per line. tests/interop.rs compares its own constants with these.
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/hyperv.h>

#define OFF(name, member) printf("%s %zu\n", name, offsetof(struct hv_kvp_msg, member))

int main(void)
{
	printf("size %zu\n", sizeof(struct hv_kvp_msg));
	OFF("operation", kvp_hdr.operation);
	OFF("pool", kvp_hdr.pool);
	OFF("error", error);
	OFF("set.value_type", body.kvp_set.data.value_type);
	OFF("set.key_size", body.kvp_set.data.key_size);
	OFF("set.value_size", body.kvp_set.data.value_size);
	OFF("set.key", body.kvp_set.data.key);
	OFF("set.value", body.kvp_set.data.value);
	OFF("get.value", body.kvp_get.data.value);
	OFF("delete.key_size", body.kvp_delete.key_size);
	OFF("delete.key", body.kvp_delete.key);
	OFF("enum.index", body.kvp_enum_data.index);
	OFF("enum.key_size", body.kvp_enum_data.data.key_size);
	OFF("enum.value_size", body.kvp_enum_data.data.value_size);
	OFF("enum.key", body.kvp_enum_data.data.key);
	OFF("enum.value", body.kvp_enum_data.data.value);
	OFF("register.version", body.kvp_register.version);
	printf("op.register1 %d\n", KVP_OP_REGISTER1);
	printf("op.get %d\n", KVP_OP_GET);
	printf("op.set %d\n", KVP_OP_SET);
	printf("op.delete %d\n", KVP_OP_DELETE);
	printf("op.enumerate %d\n", KVP_OP_ENUMERATE);
	printf("pool.auto %d\n", KVP_POOL_AUTO);
	printf("HV_S_OK %u\n", (unsigned)HV_S_OK);
	printf("HV_E_FAIL %u\n", (unsigned)HV_E_FAIL);
	printf("HV_S_CONT %u\n", (unsigned)HV_S_CONT);
	printf("REG_SZ %d\n", REG_SZ);
	return 0;
}
