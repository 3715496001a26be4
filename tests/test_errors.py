from imgcls_cli.errors import unknown_name_message


def test_unknown_name_suggests_the_closest_and_lists_valid():
    message = unknown_name_message("arch", "simplcnn", ["simplecnn", "resnet8"])
    assert "Did you mean 'simplecnn'?" in message
    assert "Valid: simplecnn, resnet8." in message


def test_unknown_name_without_close_match_only_lists():
    message = unknown_name_message("arch", "zzz", ["simplecnn", "resnet8"])
    assert "Did you mean" not in message
