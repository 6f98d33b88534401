"""The launch tests run under launch_testing (`launch_test`, or its pytest plugin in
`colcon test`). Without that plugin (the project's `make test` loads only the plugins it needs,
or launch_testing is not installed) pytest leaves them alone; test_launch_layout.py still runs,
so this directory never collects zero tests."""


def pytest_ignore_collect(collection_path, config):
    name = collection_path.name
    if name.startswith('test_') and name.endswith('_launch.py') and \
            not config.pluginmanager.hasplugin('launch_testing'):
        return True
    return None
